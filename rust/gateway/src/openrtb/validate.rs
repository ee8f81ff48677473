//! Checks a bid request as JSON before it is typed, so that every message names the field
//! (`request.imp[0].banner.w must be a positive number`) rather than a serde position.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Parses the body; a syntax error reports its byte offset as well as line and column.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body).map_err(|e| {
        let off = byte_offset(body, e.line(), e.column());
        format!(
            "request body is not valid JSON at byte {off} (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })
}

/// serde_json's 1-based line and column (the column counts bytes) as a 0-based byte offset.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match body[start..].iter().position(|b| *b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(body.len())
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

fn positive_int(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x > 0.0 && x.fract() == 0.0) => Ok(()),
        Some(_) => Err(format!("{path} must be a positive number")),
    }
}

fn non_negative(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x >= 0.0 && x.is_finite()) => Ok(()),
        Some(_) => Err(format!("{path} must be a number >= 0")),
    }
}

fn string(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(format!("{path} must be a string")),
    }
}

fn integer(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        Some(_) => Err(format!("{path} must be an integer")),
    }
}

fn currency(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(())
        }
        Some(other) => Err(format!("{path} must be an ISO 4217 code like \"USD\", got {other}")),
    }
}

fn strings(v: Option<&Value>, path: Path<'_>) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(xs)) => {
            for (i, x) in xs.iter().enumerate() {
                if !x.is_string() {
                    return Err(format!("{} must be a string", path.index(i)));
                }
            }
            Ok(())
        }
        Some(_) => Err(format!("{path} must be an array of strings")),
    }
}

fn one_of(v: Option<&Value>, path: Path<'_>, allowed: &[i64], what: &str) -> Check {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|x| allowed.contains(&x)) => Ok(()),
        Some(other) => Err(format!("{path} must be {what}, got {other}")),
    }
}

fn object<'a>(
    v: Option<&'a Value>,
    path: Path<'_>,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{path} must be an object")),
    }
}

fn sized(m: &Map<String, Value>, path: Path<'_>) -> Check {
    positive_int(m.get("w"), path.key("w"))?;
    positive_int(m.get("h"), path.key("h"))
}

/// Checks the request; the error names the first field that is wrong.
pub fn check(req: &Value) -> Check {
    let Value::Object(r) = req else {
        return Err("request must be a JSON object".into());
    };
    match r.get("id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err("request.id must be a non-empty string".into()),
    }
    let imps = match r.get("imp") {
        Some(Value::Array(xs)) if !xs.is_empty() => xs,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err("request.imp must contain at least one element".into())
        }
        Some(_) => return Err("request.imp must be an array".into()),
    };
    let imp_path = REQUEST.key("imp");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, imp) in imps.iter().enumerate() {
        let p = imp_path.index(i);
        let Value::Object(m) = imp else {
            return Err(format!("{p} must be an object"));
        };
        let id = match m.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(format!("{p}.id must be a non-empty string")),
        };
        if let Some(j) = seen.insert(id, i) {
            return Err(format!("{p}.id {id:?} duplicates request.imp[{j}].id"));
        }
        let mut media = 0;
        let banner = p.key("banner");
        if let Some(b) = object(m.get("banner"), banner)? {
            media += 1;
            sized(b, banner)?;
            match b.get("format") {
                None | Some(Value::Null) => {}
                Some(Value::Array(fs)) => {
                    let format = banner.key("format");
                    for (k, f) in fs.iter().enumerate() {
                        let fp = format.index(k);
                        let Value::Object(f) = f else {
                            return Err(format!("{fp} must be an object"));
                        };
                        sized(f, fp)?;
                    }
                }
                Some(_) => return Err(format!("{p}.banner.format must be an array")),
            }
        }
        let video = p.key("video");
        if let Some(v) = object(m.get("video"), video)? {
            media += 1;
            sized(v, video)?;
            integer(v.get("plcmt"), video.key("plcmt"))?;
        }
        string(m.get("tagid"), p.key("tagid"))?;
        for k in ["audio", "native"] {
            if object(m.get(k), p.key(k))?.is_some() {
                media += 1;
            }
        }
        if media == 0 {
            return Err(format!("{p} must have one of banner, video, audio, native"));
        }
        non_negative(m.get("bidfloor"), p.key("bidfloor"))?;
        currency(m.get("bidfloorcur"), p.key("bidfloorcur"))?;
        let pp = p.key("pmp");
        if let Some(pmp) = object(m.get("pmp"), pp)? {
            one_of(pmp.get("private_auction"), pp.key("private_auction"), &[0, 1], "0 or 1")?;
            match pmp.get("deals") {
                None | Some(Value::Null) => {}
                Some(Value::Array(ds)) => {
                    let deals = pp.key("deals");
                    for (k, d) in ds.iter().enumerate() {
                        let dp = deals.index(k);
                        let Value::Object(d) = d else {
                            return Err(format!("{dp} must be an object"));
                        };
                        match d.get("id") {
                            Some(Value::String(s)) if !s.is_empty() => {}
                            _ => return Err(format!("{dp}.id must be a non-empty string")),
                        }
                        non_negative(d.get("bidfloor"), dp.key("bidfloor"))?;
                        currency(d.get("bidfloorcur"), dp.key("bidfloorcur"))?;
                    }
                }
                Some(_) => return Err(format!("{p}.pmp.deals must be an array")),
            }
        }
    }
    let has = |k: &str| r.get(k).is_some_and(|v| !v.is_null());
    if ["site", "app", "dooh"].into_iter().filter(|k| has(k)).count() != 1 {
        let present: Vec<&str> = ["site", "app", "dooh"].into_iter().filter(|k| has(k)).collect();
        return Err(format!(
            "request must contain exactly one of site, app, dooh; got {}",
            if present.is_empty() { "none".to_string() } else { present.join(", ") }
        ));
    }
    for k in ["site", "app", "dooh", "device"] {
        object(r.get(k), REQUEST.key(k))?;
    }
    for (obj, keys) in [("site", ["id", "domain", "page"]), ("app", ["id", "bundle", "domain"])] {
        if let Some(Value::Object(o)) = r.get(obj) {
            let op = REQUEST.key(obj);
            for k in keys {
                string(o.get(k), op.key(k))?;
            }
        }
    }
    if let Some(Value::Object(d)) = r.get("device") {
        let geo = REQUEST.key("device");
        let geo = geo.key("geo");
        if let Some(g) = object(d.get("geo"), geo)? {
            string(g.get("country"), geo.key("country"))?;
        }
    }
    match r.get("tmax") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some_and(|x| x > 0) => {}
        Some(other) => {
            return Err(format!(
                "request.tmax must be a positive integer of milliseconds, got {other}"
            ))
        }
    }
    one_of(r.get("at"), REQUEST.key("at"), &[1, 2], "1 (first price) or 2 (second price)")?;
    one_of(r.get("test"), REQUEST.key("test"), &[0, 1], "0 or 1")?;
    for k in ["cur", "bcat", "badv", "bapp", "wseat", "bseat"] {
        strings(r.get(k), REQUEST.key(k))?;
    }
    // the spec allows at most one of the two; an empty list restricts nothing
    let used = |k: &str| matches!(r.get(k), Some(Value::Array(xs)) if !xs.is_empty());
    if used("wseat") && used("bseat") {
        return Err(
            "request.wseat and request.bseat are both given: use at most one of them".into()
        );
    }
    if let Some(Value::Array(cs)) = r.get("cur") {
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
        assert!(e.contains("at byte 10 "), "{e}");
    }
}
