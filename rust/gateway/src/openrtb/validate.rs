//! Checks a bid request as JSON before it is typed, so that every message names the field
//! (`request.imp[0].banner.w must be a positive number`) rather than a serde position.

use std::collections::HashMap;

use sonic_rs::{
    JsonContainerTrait, JsonNumberTrait, JsonValueTrait, Object as Map, Value, ValueRef,
};

/// Parses the body; a syntax error reports its byte offset as well as line and column.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    sonic_rs::from_slice::<Value>(body).map_err(|e| {
        let off = e.offset().min(body.len());
        let (line, column) = line_and_column(body, off);
        format!(
            "request body is not valid JSON at byte {off} (line {line}, column {column}): {}",
            reason(&e)
        )
    })
}

/// The 1-based line and column (counting bytes) of byte `off`.
fn line_and_column(body: &[u8], off: usize) -> (usize, usize) {
    let before = &body[..off];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let start = before.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    (line, off - start + 1)
}

/// sonic-rs's message without the position and excerpt it appends (given by the caller).
fn reason(e: &sonic_rs::Error) -> String {
    let full = e.to_string();
    match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

type Check = Result<(), String>;

/// A field's path (`request.imp[0].banner.w`), written out only when a message needs it: a
/// valid request costs no string.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

const REQUEST: Path<'static> = Path { parent: None, seg: Seg::Key("request") };

impl<'a> Path<'a> {
    fn key(&'a self, k: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Key(k) }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Index(i) }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}")?;
        }
        match (self.seg, self.parent) {
            (Seg::Key(k), None) => f.write_str(k),
            (Seg::Key(k), Some(_)) => write!(f, ".{k}"),
            (Seg::Index(i), _) => write!(f, "[{i}]"),
        }
    }
}

/// A field's value as an enum to match on; absent and `null` are both `None`.
fn kind(v: Option<&Value>) -> Option<ValueRef<'_>> {
    v.map(Value::as_ref).filter(|r| !matches!(r, ValueRef::Null))
}

fn positive_int(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::Number(n)) if n.as_f64().is_some_and(|x| x > 0.0 && x.fract() == 0.0) => {
            Ok(())
        }
        Some(_) => Err(format!("{path} must be a positive number")),
    }
}

fn non_negative(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::Number(n)) if n.as_f64().is_some_and(|x| x >= 0.0 && x.is_finite()) => {
            Ok(())
        }
        Some(_) => Err(format!("{path} must be a number >= 0")),
    }
}

fn string(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None | Some(ValueRef::String(_)) => Ok(()),
        Some(_) => Err(format!("{path} must be a string")),
    }
}

fn integer(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        Some(_) => Err(format!("{path} must be an integer")),
    }
}

/// `v` written out for a message (present whenever a check fails on it).
fn shown(v: Option<&Value>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn currency(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::String(s)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(())
        }
        Some(_) => Err(format!("{path} must be an ISO 4217 code like \"USD\", got {}", shown(v))),
    }
}

fn strings(v: Option<&Value>, path: Path<'_>) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::Array(xs)) => {
            for (i, x) in xs.iter().enumerate() {
                if !x.is_str() {
                    return Err(format!("{} must be a string", path.index(i)));
                }
            }
            Ok(())
        }
        Some(_) => Err(format!("{path} must be an array of strings")),
    }
}

fn one_of(v: Option<&Value>, path: Path<'_>, allowed: &[i64], what: &str) -> Check {
    match kind(v) {
        None => Ok(()),
        Some(ValueRef::Number(n)) if n.as_i64().is_some_and(|x| allowed.contains(&x)) => Ok(()),
        Some(_) => Err(format!("{path} must be {what}, got {}", shown(v))),
    }
}

fn object<'a>(v: Option<&'a Value>, path: Path<'_>) -> Result<Option<&'a Map>, String> {
    match kind(v) {
        None => Ok(None),
        Some(ValueRef::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{path} must be an object")),
    }
}

/// A non-empty string field, or `None`.
fn non_empty<'a>(m: &'a Map, key: &str) -> Option<&'a str> {
    m.get(&key).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
}

fn sized(m: &Map, path: Path<'_>) -> Check {
    positive_int(m.get(&"w"), path.key("w"))?;
    positive_int(m.get(&"h"), path.key("h"))
}

/// Checks the request; the error names the first field that is wrong.
pub fn check(req: &Value) -> Check {
    let Some(r) = req.as_object() else {
        return Err("request must be a JSON object".into());
    };
    if non_empty(r, "id").is_none() {
        return Err("request.id must be a non-empty string".into());
    }
    let imps = match kind(r.get(&"imp")) {
        Some(ValueRef::Array(xs)) if !xs.is_empty() => xs,
        Some(ValueRef::Array(_)) | None => {
            return Err("request.imp must contain at least one element".into())
        }
        Some(_) => return Err("request.imp must be an array".into()),
    };
    let imp_path = REQUEST.key("imp");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, imp) in imps.iter().enumerate() {
        let p = imp_path.index(i);
        let Some(m) = imp.as_object() else {
            return Err(format!("{p} must be an object"));
        };
        let Some(id) = non_empty(m, "id") else {
            return Err(format!("{p}.id must be a non-empty string"));
        };
        if let Some(j) = seen.insert(id, i) {
            return Err(format!("{p}.id {id:?} duplicates request.imp[{j}].id"));
        }
        let mut media = 0;
        let banner = p.key("banner");
        if let Some(b) = object(m.get(&"banner"), banner)? {
            media += 1;
            sized(b, banner)?;
            match kind(b.get(&"format")) {
                None => {}
                Some(ValueRef::Array(fs)) => {
                    let format = banner.key("format");
                    for (k, f) in fs.iter().enumerate() {
                        let fp = format.index(k);
                        let Some(f) = f.as_object() else {
                            return Err(format!("{fp} must be an object"));
                        };
                        sized(f, fp)?;
                    }
                }
                Some(_) => return Err(format!("{p}.banner.format must be an array")),
            }
        }
        let video = p.key("video");
        if let Some(v) = object(m.get(&"video"), video)? {
            media += 1;
            sized(v, video)?;
            integer(v.get(&"plcmt"), video.key("plcmt"))?;
        }
        string(m.get(&"tagid"), p.key("tagid"))?;
        for k in ["audio", "native"] {
            if object(m.get(&k), p.key(k))?.is_some() {
                media += 1;
            }
        }
        if media == 0 {
            return Err(format!("{p} must have one of banner, video, audio, native"));
        }
        non_negative(m.get(&"bidfloor"), p.key("bidfloor"))?;
        currency(m.get(&"bidfloorcur"), p.key("bidfloorcur"))?;
        let pp = p.key("pmp");
        if let Some(pmp) = object(m.get(&"pmp"), pp)? {
            one_of(pmp.get(&"private_auction"), pp.key("private_auction"), &[0, 1], "0 or 1")?;
            match kind(pmp.get(&"deals")) {
                None => {}
                Some(ValueRef::Array(ds)) => {
                    let deals = pp.key("deals");
                    for (k, d) in ds.iter().enumerate() {
                        let dp = deals.index(k);
                        let Some(d) = d.as_object() else {
                            return Err(format!("{dp} must be an object"));
                        };
                        if non_empty(d, "id").is_none() {
                            return Err(format!("{dp}.id must be a non-empty string"));
                        }
                        non_negative(d.get(&"bidfloor"), dp.key("bidfloor"))?;
                        currency(d.get(&"bidfloorcur"), dp.key("bidfloorcur"))?;
                        strings(d.get(&"wseat"), dp.key("wseat"))?;
                    }
                }
                Some(_) => return Err(format!("{p}.pmp.deals must be an array")),
            }
        }
    }
    let has = |k: &str| kind(r.get(&k)).is_some();
    if ["site", "app", "dooh"].into_iter().filter(|k| has(k)).count() != 1 {
        let present: Vec<&str> = ["site", "app", "dooh"].into_iter().filter(|k| has(k)).collect();
        return Err(format!(
            "request must contain exactly one of site, app, dooh; got {}",
            if present.is_empty() { "none".to_string() } else { present.join(", ") }
        ));
    }
    for k in ["site", "app", "dooh", "device"] {
        object(r.get(&k), REQUEST.key(k))?;
    }
    for (obj, keys) in [("site", ["id", "domain", "page"]), ("app", ["id", "bundle", "domain"])] {
        if let Some(o) = r.get(&obj).and_then(|v| v.as_object()) {
            let op = REQUEST.key(obj);
            for k in keys {
                string(o.get(&k), op.key(k))?;
            }
        }
    }
    if let Some(d) = r.get(&"device").and_then(|v| v.as_object()) {
        let geo = REQUEST.key("device");
        let geo = geo.key("geo");
        if let Some(g) = object(d.get(&"geo"), geo)? {
            string(g.get(&"country"), geo.key("country"))?;
        }
    }
    let tmax = r.get(&"tmax");
    match kind(tmax) {
        None => {}
        Some(ValueRef::Number(n)) if n.as_i64().is_some_and(|x| x > 0) => {}
        Some(_) => {
            return Err(format!(
                "request.tmax must be a positive integer of milliseconds, got {}",
                shown(tmax)
            ))
        }
    }
    one_of(r.get(&"at"), REQUEST.key("at"), &[1, 2], "1 (first price) or 2 (second price)")?;
    one_of(r.get(&"test"), REQUEST.key("test"), &[0, 1], "0 or 1")?;
    for k in ["cur", "bcat", "badv", "bapp", "wseat", "bseat"] {
        strings(r.get(&k), REQUEST.key(k))?;
    }
    // the spec allows at most one of the two; an empty list restricts nothing
    let used = |k: &str| r.get(&k).and_then(|v| v.as_array()).is_some_and(|xs| !xs.is_empty());
    if used("wseat") && used("bseat") {
        return Err(
            "request.wseat and request.bseat are both given: use at most one of them".into()
        );
    }
    if let Some(cs) = r.get(&"cur").and_then(|v| v.as_array()) {
        let cur = REQUEST.key("cur");
        for (i, c) in cs.iter().enumerate() {
            currency(Some(c), cur.index(i))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_out_as_fields() {
        let imp = REQUEST.key("imp");
        let i = imp.index(2);
        let deals = i.key("pmp");
        let deals = deals.key("deals");
        assert_eq!(
            deals.index(0).key("bidfloor").to_string(),
            "request.imp[2].pmp.deals[0].bidfloor"
        );
        assert_eq!(REQUEST.to_string(), "request");
    }

    #[test]
    fn offsets_count_bytes_across_lines() {
        let body = b"{\n  \"id\": x}";
        let e = parse(body).unwrap_err();
        assert!(e.contains("at byte 10 (line 2, column 9): "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let e = parse(b"{\"a\":1}}").unwrap_err();
        assert!(e.contains("at byte 7 (line 1, column 8): "), "{e}");
        let e = parse(b"").unwrap_err();
        assert!(e.contains("at byte 0 (line 1, column 1): "), "{e}");
    }
}
