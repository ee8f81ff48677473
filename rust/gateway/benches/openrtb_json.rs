//! The OpenRTB door's JSON work per request (parse once, check, type, write the bidders' body)
//! beside the same steps with serde_json's tree, on one request shaped like the spec's examples.
use criterion::{criterion_group, criterion_main, Criterion};
use rtbcore_gateway::openrtb::{bidders, model, validate};

const REQUEST: &str = r#"{"id":"80ce30c53c16e6ede735f123ef6e32361bfc7b22","at":1,"cur":["USD"],"tmax":120,
"imp":[{"id":"1","bidfloor":0.03,"bidfloorcur":"USD","secure":1,
 "banner":{"h":250,"w":300,"pos":0,"format":[{"w":300,"h":250},{"w":320,"h":50}]},
 "ext":{"prebid":{"bidder":{"a":{"placement":123}}}}},
 {"id":"2","bidfloor":0.05,"video":{"mimes":["video/mp4"],"minduration":5,"maxduration":30,
 "protocols":[2,3,5,6],"w":640,"h":480},
 "pmp":{"private_auction":0,"deals":[{"id":"deal-1","bidfloor":1.5,"wseat":["seat-a"]}]}}],
"site":{"id":"102855","cat":["IAB3-1"],"domain":"www.foobar.com","page":"http://www.foobar.com/1234.html",
 "publisher":{"id":"8953","name":"foobar.com","cat":["IAB3-1"],"domain":"foobar.com"}},
"device":{"ua":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6_8) AppleWebKit/537.13 (KHTML, like Gecko) Version/5.1.7 Safari/534.57.2",
 "ip":"123.145.167.10","geo":{"country":"USA","region":"CA","city":"San Francisco","lat":37.77,"lon":-122.41},
 "devicetype":2,"language":"en","js":1},
"user":{"id":"55816b39711f9b5acf3b90e313ed29e51665623f","buyeruid":"545678765467876567898765678987654",
 "ext":{"consent":"CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"}},
"regs":{"coppa":0,"ext":{"gdpr":1}},"bcat":["IAB25","IAB26"],"badv":["company1.com","company2.com"],
"ext":{"prebid":{"bidadjustments":{"mediatype":{"banner":{"bidderA":{"*":[{"adjtype":"multiplier","value":0.9}]}}}}}}}"#;

fn bench_json(c: &mut Criterion) {
    let body = REQUEST.as_bytes();
    let mut g = c.benchmark_group("openrtb_request_json");
    g.bench_function("door (sonic-rs): parse, check, type, bidder body", |b| {
        b.iter(|| {
            let raw = validate::parse(body).unwrap();
            validate::check(&raw).unwrap();
            let req: model::BidRequest = sonic_rs::from_value(&raw).unwrap();
            let out = bidders::request_body(&raw, 100).unwrap();
            (req.imp.len(), out.len())
        })
    });
    g.bench_function("serde_json tree: parse, type, bidder body (no check)", |b| {
        b.iter(|| {
            let raw: serde_json::Value = serde_json::from_slice(body).unwrap();
            let req = <model::BidRequest as serde::Deserialize>::deserialize(&raw).unwrap();
            let out = serde_json::to_vec(&raw).unwrap();
            (req.imp.len(), out.len())
        })
    });
    g.bench_function("parse only: door (sonic-rs tree)", |b| {
        b.iter(|| validate::parse(body).unwrap())
    });
    g.bench_function("parse only: serde_json tree", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(body).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_json);
criterion_main!(benches);
