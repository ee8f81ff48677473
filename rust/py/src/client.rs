//! The per-event work of the Python bidding client (`rtbcore/client/_session.py`), so that a
//! Python object is made only for what the user is handed:
//!
//! - `Event`: one server event, holding its own encoding; fields are read from it on use (a
//!   prost decode, cached), `raw` is the protocol class' message, decoded on first use.
//! - `_ClientStream`: one connection's inbound state. `feed` splits a `ServerFrame` into its
//!   events, drops the stream's duplicates (seq at or below the last delivered), records the
//!   auctions announced to the client, settles `place_bids` answers, and hands Python the new
//!   events; it stops at an event that needs Python's judgement (a rejection, an ack, an error,
//!   an answer to a request it does not hold), which `resume` goes on after. It also holds the
//!   bids of `place_bids` calls not yet answered and writes their frames.
//! - `_BidBatch`: the answers of one `place_bids` call and the future its caller waits on.
//!
//! Malformed frames raise the protocol package's `DecodeError`, before anything of the frame
//! is taken in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyType};
use pyo3::{PyTraverseError, PyVisit};
use rtbcore_proto::prost::Message;
use rtbcore_proto::v1::{bid_event::Event as Body, BidEvent, BidStatus, RejectReason};

pyo3::import_exception!(google.protobuf.message, DecodeError);

/// The auctions remembered as announced: at least the newest this many, at most twice as many
/// (two generations of this many each).
const KNOWN_AUCTIONS: usize = 65_536;
/// Accepted bids remembered for answering a re-sent bid refused as `ALREADY_BID`.
const ACCEPTED: usize = 65_536;
/// The exchange's most messages per frame.
const FRAME_MESSAGES: usize = 4096;
const MAX_ID_BYTES: usize = 64;
const MAX_MICROS: i64 = 1_000_000_000_000;

// oneof field numbers of `BidEvent.event`
const AUTH_RESULT: u8 = 10;
const SUBSCRIPTION_ACK: u8 = 11;
const AUCTION_STARTED: u8 = 12;
const BID_ACCEPTED: u8 = 13;
const BID_REJECTED: u8 = 14;
const ERROR: u8 = 21;

// ---- protobuf wire format: just enough to find an event's envelope fields ----

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes")
}

enum Val {
    Varint(u64),
    Len(usize, usize),
    Fixed,
}

/// The next field at `pos`: its number and value (a length-delimited one as a byte range).
fn next_field(buf: &[u8], pos: &mut usize) -> Result<(u32, Val), &'static str> {
    let key = varint(buf, pos)?;
    let num = key >> 3;
    if num == 0 || num > 0x1fff_ffff {
        return Err("invalid field number");
    }
    let val = match key & 7 {
        0 => Val::Varint(varint(buf, pos)?),
        1 | 5 => {
            let n = if key & 7 == 1 { 8 } else { 4 };
            if buf.len() - *pos < n {
                return Err("truncated fixed-width field");
            }
            *pos += n;
            Val::Fixed
        }
        2 => {
            let n = varint(buf, pos)?;
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= buf.len() - *pos)
                .ok_or("length beyond the end of the message")?;
            let start = *pos;
            *pos += n;
            Val::Len(start, start + n)
        }
        _ => return Err("unsupported wire type (groups)"),
    };
    Ok((num as u32, val))
}

/// The last occurrence of string field `num` in `buf`, as a byte range.
fn last_len_field(buf: &[u8], num: u32) -> Result<Option<(usize, usize)>, &'static str> {
    let mut pos = 0;
    let mut found = None;
    while pos < buf.len() {
        if let (n, Val::Len(a, b)) = next_field(buf, &mut pos)? {
            if n == num {
                found = Some((a, b));
            }
        }
    }
    Ok(found)
}

/// The field number of `auction_id` in each event type's message.
fn auction_id_field(kind: u8) -> Option<u32> {
    match kind {
        12 | 15 | 16 | 19 | 20 => Some(1), // started, won, lost, opened, closed
        13 | 17 => Some(2),                // bid_accepted, bid_update
        14 => Some(3),                     // bid_rejected
        _ => None,
    }
}

/// A `BidEvent`'s envelope: the oneof case (0: none or unknown), seq, and byte ranges of the
/// request id, the case's message and its auction id.
#[derive(Default, Clone, Copy)]
struct Envelope {
    kind: u8,
    seq: u64,
    rid: (u32, u32),
    body: (u32, u32),
    aid: Option<(u32, u32)>,
}

fn envelope(buf: &[u8]) -> Result<(Envelope, bool), &'static str> {
    let mut e = Envelope::default();
    let mut merged = false;
    let mut pos = 0;
    while pos < buf.len() {
        match next_field(buf, &mut pos)? {
            (2, Val::Varint(v)) => e.seq = v,
            (4, Val::Len(a, b)) => e.rid = (a as u32, b as u32),
            (n @ 10..=21, Val::Len(a, b)) => {
                // a case repeated is merged by protobuf; another case replaces it
                merged = e.kind == n as u8;
                e.kind = n as u8;
                e.body = (a as u32, b as u32);
            }
            _ => {}
        }
    }
    Ok((e, merged))
}

/// Reads an event's encoding: its envelope, with the encoding made canonical (one occurrence
/// of its case, as prost re-encodes it) when a case was repeated.
fn parse_event(buf: &[u8]) -> Result<(Option<Vec<u8>>, Envelope), String> {
    let (mut e, merged) = envelope(buf)?;
    let mut owned = None;
    if merged {
        let ev = BidEvent::decode(buf).map_err(|err| err.to_string())?;
        let data = ev.encode_to_vec();
        e = envelope(&data)?.0;
        owned = Some(data);
    }
    let data = owned.as_deref().unwrap_or(buf);
    std::str::from_utf8(&data[e.rid.0 as usize..e.rid.1 as usize])
        .map_err(|_| "request_id is not UTF-8")?;
    if let Some(f) = auction_id_field(e.kind) {
        let body = &data[e.body.0 as usize..e.body.1 as usize];
        if let Some((a, b)) = last_len_field(body, f)? {
            std::str::from_utf8(&body[a..b]).map_err(|_| "auction_id is not UTF-8")?;
            e.aid = Some((e.body.0 + a as u32, e.body.0 + b as u32));
        }
    }
    Ok((owned, e))
}

/// The auction id of an event's encoding (checked UTF-8 when the event was read).
fn auction_id_of<'a>(data: &'a [u8], env: &Envelope) -> &'a str {
    env.aid.map_or("", |r| std::str::from_utf8(&data[r.0 as usize..r.1 as usize]).unwrap_or(""))
}

fn decode_err(what: &str, msg: impl std::fmt::Display) -> PyErr {
    DecodeError::new_err(format!("malformed {what}: {msg}"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v > 0x7f {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The digits of request id numbers: URL-safe base 64, most significant first (short ids:
/// the exchange keeps and echoes every one).
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/// Appends request number `n` in [`DIGITS`].
fn put_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 11];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = DIGITS[(n & 63) as usize];
        n >>= 6;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn digit_value(d: u8) -> Option<u64> {
    let v = match d {
        b'0'..=b'9' => d - b'0',
        b'A'..=b'Z' => d - b'A' + 10,
        b'a'..=b'z' => d - b'a' + 36,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u64::from(v))
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_len_field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// A `ClientFrame.messages` entry holding `BidMessage{request_id, place_bid: PlaceBid{
/// auction_id, amount: Money{currency, micros}}}`, fields in number order as protobuf writes
/// them.
fn put_place_entry(out: &mut Vec<u8>, rid: &[u8], aid: &[u8], currency: &[u8], micros: i64) {
    let micros = micros as u64;
    let cur = if currency.is_empty() {
        0
    } else {
        1 + varint_len(currency.len() as u64) + currency.len()
    };
    let money = cur + 1 + varint_len(micros);
    let place = 1 + varint_len(aid.len() as u64) + aid.len() + 1 + varint_len(money as u64) + money;
    let msg = 1 + varint_len(rid.len() as u64) + rid.len() + 1 + varint_len(place as u64) + place;
    out.reserve(1 + varint_len(msg as u64) + msg);
    out.push(b'\n');
    put_varint(out, msg as u64);
    put_len_field(out, b'\n', rid);
    out.push(b'b'); // field 12, length-delimited
    put_varint(out, place as u64);
    put_len_field(out, b'\n', aid);
    out.push(0x12);
    put_varint(out, money as u64);
    if !currency.is_empty() {
        put_len_field(out, b'\n', currency);
    }
    out.push(0x10);
    put_varint(out, micros);
}

fn type_name(py: Python<'_>, kind: u8) -> &Bound<'_, PyString> {
    match kind {
        10 => pyo3::intern!(py, "auth_result"),
        11 => pyo3::intern!(py, "subscription_ack"),
        12 => pyo3::intern!(py, "auction_started"),
        13 => pyo3::intern!(py, "bid_accepted"),
        14 => pyo3::intern!(py, "bid_rejected"),
        15 => pyo3::intern!(py, "auction_won"),
        16 => pyo3::intern!(py, "auction_lost"),
        17 => pyo3::intern!(py, "bid_update"),
        18 => pyo3::intern!(py, "metrics_update"),
        19 => pyo3::intern!(py, "auction_opened"),
        20 => pyo3::intern!(py, "auction_closed"),
        21 => pyo3::intern!(py, "error"),
        _ => pyo3::intern!(py, "unknown"),
    }
}

static BID_EVENT_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn bid_event_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    BID_EVENT_CLASS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("rtbcore.client.bidding_pb2")?.getattr("BidEvent")?.unbind())
        })
        .map(|c| c.bind(py))
}

/// One server event (`BidEvent`), read lazily from its encoding.
///
/// `type` is the event type (`"auction_started"`, `"auction_won"`...; `"auth_result"`,
/// `"subscription_ack"`, `"metrics_update"`, `"auction_opened"`, `"error"` outside the
/// stream), `seq` its position in the buyer's stream (0 outside it). Money fields are in
/// currency units (`amount`, `price`, `floor`, `min_to_win`) and exact integer micros
/// (`amount_micros`...). `call_id` is `auction_id`. Fields an event type does not carry read
/// as their empty value. `raw` is the `bidding_pb2.BidEvent` message; `Event(raw)` wraps one.
#[pyclass(name = "Event", module = "_rtbcore", frozen)]
pub struct Event {
    data: Box<[u8]>,
    env: Envelope,
    auction_id: PyOnceLock<Py<PyString>>,
    // boxed: a decoded event is large, and most events are never decoded
    decoded: PyOnceLock<Box<BidEvent>>,
    raw: PyOnceLock<Py<PyAny>>,
}

impl Event {
    fn new(data: Box<[u8]>, env: Envelope) -> Self {
        Event {
            data,
            env,
            auction_id: PyOnceLock::new(),
            decoded: PyOnceLock::new(),
            raw: PyOnceLock::new(),
        }
    }

    fn slice(&self, r: (u32, u32)) -> &[u8] {
        &self.data[r.0 as usize..r.1 as usize]
    }

    /// The auction id (checked UTF-8 when the event was read).
    fn aid(&self) -> &str {
        self.env.aid.map_or("", |r| std::str::from_utf8(self.slice(r)).unwrap_or(""))
    }

    /// The whole message, decoded on first use.
    fn decoded(&self, py: Python<'_>) -> PyResult<&BidEvent> {
        self.decoded
            .get_or_try_init(py, || {
                BidEvent::decode(&*self.data).map(Box::new).map_err(|e| decode_err("BidEvent", e))
            })
            .map(|b| &**b)
    }

    fn body(&self, py: Python<'_>) -> PyResult<Option<&Body>> {
        Ok(self.decoded(py)?.event.as_ref())
    }

    fn money(&self, py: Python<'_>, field: &str) -> PyResult<i64> {
        let m = match (self.body(py)?, field) {
            (Some(Body::BidAccepted(b)), "amount") => b.amount.as_ref(),
            (Some(Body::BidUpdate(b)), "amount") => b.amount.as_ref(),
            (Some(Body::AuctionWon(b)), "price") => b.price.as_ref(),
            (Some(Body::AuctionStarted(b)), "floor") => b.floor.as_ref(),
            (Some(Body::AuctionWon(b)), "min_to_win") => b.min_to_win.as_ref(),
            (Some(Body::AuctionLost(b)), "min_to_win") => b.min_to_win.as_ref(),
            _ => None,
        };
        Ok(m.map_or(0, |m| m.micros))
    }
}

#[pymethods]
impl Event {
    #[new]
    fn py_new(raw: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = raw.py();
        if !raw.is_instance(bid_event_class(py)?)? {
            return Err(PyTypeError::new_err(format!(
                "Event(raw): raw must be a bidding_pb2.BidEvent, got {}",
                raw.get_type().name()?
            )));
        }
        let data = raw.call_method0("SerializeToString")?;
        let data = data.cast::<PyBytes>()?.as_bytes();
        let (owned, env) = parse_event(data).map_err(|e| decode_err("BidEvent", e))?;
        let ev = Event::new(owned.map_or_else(|| data.into(), Vec::into_boxed_slice), env);
        let _ = ev.raw.set(py, raw.clone().unbind());
        Ok(ev)
    }

    #[getter]
    fn r#type<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        type_name(py, self.env.kind).clone()
    }

    #[getter]
    fn seq(&self) -> u64 {
        self.env.seq
    }

    /// The `bidding_pb2.BidEvent` message (decoded on first use).
    #[getter]
    fn raw(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.raw
            .get_or_try_init(py, || {
                let b = PyBytes::new(py, &self.data);
                Ok::<_, PyErr>(bid_event_class(py)?.call_method1("FromString", (b,))?.unbind())
            })
            .map(|r| r.clone_ref(py))
    }

    #[getter]
    fn event_id(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.decoded(py)?.event_id.clone())
    }

    #[getter]
    fn request_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        let r = std::str::from_utf8(self.slice(self.env.rid)).unwrap_or("");
        PyString::new(py, r)
    }

    /// Seconds since the Unix epoch (0.0 when absent).
    #[getter]
    fn timestamp(&self, py: Python<'_>) -> PyResult<f64> {
        let t = self.decoded(py)?.timestamp.as_ref();
        Ok(t.map_or(0.0, |t| t.seconds as f64 + t.nanos as f64 / 1e9))
    }

    #[getter]
    fn auction_id(&self, py: Python<'_>) -> Py<PyString> {
        self.auction_id.get_or_init(py, || PyString::new(py, self.aid()).unbind()).clone_ref(py)
    }

    #[getter]
    fn call_id(&self, py: Python<'_>) -> Py<PyString> {
        self.auction_id(py)
    }

    #[getter]
    fn bid_id(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match self.body(py)? {
            Some(Body::BidAccepted(b)) => b.bid_id.clone(),
            Some(Body::BidRejected(b)) => b.bid_id.clone(),
            Some(Body::AuctionWon(b)) => b.bid_id.clone(),
            Some(Body::AuctionLost(b)) => b.bid_id.clone(),
            Some(Body::BidUpdate(b)) => b.bid_id.clone(),
            _ => String::new(),
        })
    }

    #[getter]
    fn attributes(&self, py: Python<'_>) -> PyResult<HashMap<String, String>> {
        Ok(match self.body(py)? {
            Some(Body::AuctionStarted(a)) => a.attributes.clone(),
            _ => HashMap::new(),
        })
    }

    /// The announcement's `competition_level` attribute as a number; 0.0 when absent or not
    /// a number.
    #[getter]
    fn competition_level(&self, py: Python<'_>) -> PyResult<f64> {
        let Some(Body::AuctionStarted(a)) = self.body(py)? else { return Ok(0.0) };
        let Some(v) = a.attributes.get("competition_level") else { return Ok(0.0) };
        // float() of Python, so that the same strings are numbers as in Python code
        let v = match py.get_type::<PyFloat>().call1((v.as_str(),)) {
            Ok(f) => f.extract::<f64>()?,
            Err(_) => return Ok(0.0),
        };
        Ok(if v.is_finite() { v } else { 0.0 })
    }

    #[getter]
    fn expected_bids(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(match self.body(py)? {
            Some(Body::AuctionStarted(a)) => a.expected_bids,
            _ => 0,
        })
    }

    /// The auction's deadline in seconds since the Unix epoch (0.0 when absent).
    #[getter]
    fn deadline(&self, py: Python<'_>) -> PyResult<f64> {
        let d = match self.body(py)? {
            Some(Body::AuctionStarted(a)) => a.deadline.as_ref(),
            Some(Body::AuctionOpened(a)) => a.deadline.as_ref(),
            _ => None,
        };
        Ok(d.map_or(0.0, |t| t.seconds as f64 + t.nanos as f64 / 1e9))
    }

    #[getter]
    fn amount_micros(&self, py: Python<'_>) -> PyResult<i64> {
        self.money(py, "amount")
    }

    #[getter]
    fn amount(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.money(py, "amount")? as f64 / 1e6)
    }

    #[getter]
    fn price_micros(&self, py: Python<'_>) -> PyResult<i64> {
        self.money(py, "price")
    }

    #[getter]
    fn price(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.money(py, "price")? as f64 / 1e6)
    }

    #[getter]
    fn floor_micros(&self, py: Python<'_>) -> PyResult<i64> {
        self.money(py, "floor")
    }

    #[getter]
    fn floor(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.money(py, "floor")? as f64 / 1e6)
    }

    #[getter]
    fn min_to_win_micros(&self, py: Python<'_>) -> PyResult<i64> {
        self.money(py, "min_to_win")
    }

    #[getter]
    fn min_to_win(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.money(py, "min_to_win")? as f64 / 1e6)
    }

    /// The `RejectReason` number of a `bid_rejected` or `error` event (0 otherwise).
    #[getter]
    fn reason_code(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(match self.body(py)? {
            Some(Body::BidRejected(b)) => b.reason,
            Some(Body::Error(b)) => b.reason,
            _ => 0,
        })
    }

    /// The `RejectReason` name of a `bid_rejected` or `error` event ("" otherwise).
    #[getter]
    fn reason(&self, py: Python<'_>) -> PyResult<String> {
        let code = self.reason_code(py)?;
        Ok(match code {
            0 => String::new(),
            c => RejectReason::try_from(c)
                .map_or_else(|_| c.to_string(), |r| r.as_str_name().to_string()),
        })
    }

    #[getter]
    fn message(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match self.body(py)? {
            Some(Body::BidRejected(b)) => b.message.clone(),
            Some(Body::Error(b)) => b.message.clone(),
            Some(Body::AuthResult(b)) => b.message.clone(),
            _ => String::new(),
        })
    }

    /// OpenRTB loss reason of an `auction_lost` event (102 outbid, 2 expired).
    #[getter]
    fn loss_reason(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(match self.body(py)? {
            Some(Body::AuctionLost(b)) => b.loss_reason,
            _ => 0,
        })
    }

    /// `UPDATED`, `CANCELLED` or `EXPIRED` for a `bid_update` event.
    #[getter]
    fn status(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(match self.body(py)? {
            Some(Body::BidUpdate(b)) => {
                BidStatus::try_from(b.status).map_or("", |s| s.as_str_name())
            }
            _ => "",
        })
    }

    #[getter]
    fn ok(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(matches!(self.body(py)?, Some(Body::AuthResult(a)) if a.ok))
    }

    #[getter]
    fn metrics(&self, py: Python<'_>) -> PyResult<HashMap<String, f64>> {
        Ok(match self.body(py)? {
            Some(Body::MetricsUpdate(m)) => m.metrics.clone(),
            _ => HashMap::new(),
        })
    }

    /// Copies as `Event(raw)`.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, (Py<PyAny>,))> {
        Ok((slf.get_type(), (slf.get().raw(slf.py())?,)))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Event(type={}, seq={}, auction_id={})",
            type_name(py, self.env.kind).repr()?,
            self.env.seq,
            PyString::new(py, self.aid()).repr()?
        ))
    }
}

/// The answers of one `place_bids` call: `results` (None until answered) and the future its
/// caller waits on, resolved when the last bid is answered.
#[pyclass(name = "_BidBatch", module = "_rtbcore", frozen)]
pub struct BidBatch {
    results: Py<PyList>,
    left: AtomicUsize,
    fut: Py<PyAny>,
    currency: Box<str>,
}

impl BidBatch {
    fn put(&self, py: Python<'_>, index: usize, result: &Bound<'_, PyAny>) -> PyResult<bool> {
        let list = self.results.bind(py);
        if !list.get_item(index)?.is_none() {
            return Ok(false);
        }
        list.set_item(index, result)?;
        if self.left.fetch_sub(1, Ordering::Relaxed) == 1 {
            let fut = self.fut.bind(py);
            if !fut.call_method0("done")?.is_truthy()? {
                fut.call_method1("set_result", (py.None(),))?;
            }
        }
        Ok(true)
    }
}

#[pymethods]
impl BidBatch {
    #[new]
    fn py_new(py: Python<'_>, n: usize, fut: Py<PyAny>, currency: &str) -> PyResult<Self> {
        let results = PyList::new(py, (0..n).map(|_| py.None()))?.unbind();
        Ok(BidBatch { results, left: AtomicUsize::new(n), fut, currency: currency.into() })
    }

    /// Each bid's answer in order: its event or exception, None while unanswered.
    #[getter]
    fn results(&self, py: Python<'_>) -> Py<PyList> {
        self.results.clone_ref(py)
    }

    /// Sets bid `index`'s answer unless it has one; True when set. The last answer resolves
    /// the future.
    fn settle(&self, index: usize, result: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.put(result.py(), index, result)
    }

    fn answered(&self, py: Python<'_>, index: usize) -> PyResult<bool> {
        Ok(!self.results.bind(py).get_item(index)?.is_none())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.results)?;
        visit.call(&self.fut)
    }
}

/// Hashes the client's own request numbers (sequential, never chosen by a peer): one
/// multiplication instead of SipHash.
#[derive(Default)]
struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Numbers<V> = HashMap<u64, V, BuildHasherDefault<NumberHasher>>;

struct PendingBid {
    batch: Py<BidBatch>,
    index: u32,
    auction_id: Box<str>,
    micros: i64,
    order: u64,
    resent: bool,
}

/// A pending bid handed back: its batch, index, auction id, whether it was re-sent, and its
/// encoded `ClientFrame.messages` entry.
type HeldBid<'py> = (Py<BidBatch>, u32, String, bool, Bound<'py, PyBytes>);

struct Scanned {
    range: (usize, usize),
    owned: Option<Vec<u8>>,
    env: Envelope,
}

/// One connection's inbound state (see the module's documentation). `prefix` is the
/// connection's request id prefix: the ids of `place_bids` bids are it and a number in
/// URL-safe base 64 digits (`0-9A-Za-z-_`, most significant first).
#[pyclass(name = "_ClientStream", module = "_rtbcore")]
pub struct ClientStream {
    prefix: Box<[u8]>,
    /// The last stream seq delivered.
    #[pyo3(get, set)]
    last_seq: u64,
    new: u64,
    dups: u64,
    // announced auctions: the generation being filled and the one before it
    known: HashSet<Box<str>>,
    known_before: HashSet<Box<str>>,
    // accepted bids as their encodings, not Python objects: thousands of live Events each
    // hour would count toward Python's garbage collection, which holds nothing of them
    accepted: VecDeque<(Box<[u8]>, Envelope)>,
    pending: Numbers<PendingBid>,
    next_order: u64,
    staged: Vec<(Box<str>, i64)>,
    frame: Option<Py<PyBytes>>,
    scanned: Vec<Scanned>,
    cursor: usize,
}

impl ClientStream {
    /// The number of one of this connection's request ids, if `rid` is one.
    fn number(&self, rid: &[u8]) -> Option<u64> {
        let digits = rid.strip_prefix(&*self.prefix)?;
        if digits.is_empty() || digits.len() > 10 || digits[0] == b'0' {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| Some(n << 6 | digit_value(d)?))
    }

    fn remember(&mut self, aid: &str) {
        if self.knows(aid) {
            return;
        }
        if self.known.len() == KNOWN_AUCTIONS {
            // the older generation goes at once (no per-id order to keep); its table is reused
            std::mem::swap(&mut self.known, &mut self.known_before);
            self.known.clear();
        }
        self.known.insert(aid.into());
    }

    fn remember_accepted(&mut self, data: &[u8], env: Envelope) {
        if self.accepted.len() == ACCEPTED {
            self.accepted.pop_front();
        }
        self.accepted.push_back((data.into(), env));
    }

    fn request_id(&self, n: u64) -> Vec<u8> {
        let mut rid = self.prefix.to_vec();
        put_number(&mut rid, n);
        rid
    }

    fn entry(&self, py: Python<'_>, n: u64, p: &PendingBid, out: &mut Vec<u8>) {
        let cur = p.batch.bind(py).get().currency.as_bytes();
        put_place_entry(out, &self.request_id(n), p.auction_id.as_bytes(), cur, p.micros);
    }

    /// Takes in the current frame's events from the cursor on, up to the first one Python
    /// handles, which is returned beside the new stream events before it.
    fn run<'py>(&mut self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, Option<Py<Event>>)> {
        let out = PyList::empty(py);
        let Some(frame) = self.frame.as_ref().map(|f| f.clone_ref(py)) else {
            return Ok((out, None));
        };
        let bytes = frame.bind(py).as_bytes();
        let scanned = std::mem::take(&mut self.scanned);
        let mut last = self.last_seq;
        let mut slow = None;
        let result = (|| -> PyResult<()> {
            while self.cursor < scanned.len() {
                let s = &scanned[self.cursor];
                self.cursor += 1;
                let env = s.env;
                let data = s.owned.as_deref().unwrap_or(&bytes[s.range.0..s.range.1]);
                let make = || Py::new(py, Event::new(data.into(), env));
                if matches!(env.kind, BID_REJECTED | SUBSCRIPTION_ACK | ERROR | AUTH_RESULT) {
                    slow = Some(make()?);
                    break;
                }
                let mut ev = None;
                if env.rid.0 != env.rid.1 {
                    let rid = &data[env.rid.0 as usize..env.rid.1 as usize];
                    let p = self.number(rid).and_then(|n| self.pending.remove(&n));
                    let Some(p) = p else {
                        slow = Some(make()?); // an answer to a request Python holds
                        break;
                    };
                    let e = make()?;
                    p.batch.bind(py).get().put(py, p.index as usize, e.bind(py).as_any())?;
                    ev = Some(e);
                }
                let seq = env.seq;
                if seq <= last {
                    if seq != 0 {
                        self.dups += 1;
                    }
                    continue;
                }
                last = seq;
                self.new += 1;
                let ev = match ev {
                    Some(e) => e,
                    None => make()?,
                };
                if env.kind == AUCTION_STARTED {
                    if let Some(r) = env.aid {
                        let aid =
                            std::str::from_utf8(&data[r.0 as usize..r.1 as usize]).unwrap_or("");
                        self.remember(aid);
                    }
                } else if env.kind == BID_ACCEPTED {
                    self.remember_accepted(data, env);
                }
                out.append(ev)?;
            }
            Ok(())
        })();
        self.last_seq = last;
        self.scanned = scanned;
        result?;
        if slow.is_none() {
            self.frame = None;
            self.scanned.clear();
            self.cursor = 0;
        }
        Ok((out, slow))
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// An amount in currency units as `to_micros` takes it (an int or a float, not a bool;
/// finite; rounded half to even), or None when it is not a valid bid amount.
fn micros_of(a: &Bound<'_, PyAny>) -> Option<i64> {
    let m = if let Ok(f) = a.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return None;
        }
        let r = (v * 1e6).round_ties_even();
        if !(r > 0.0 && r <= MAX_MICROS as f64) {
            return None;
        }
        r as i64
    } else if a.is_instance_of::<PyInt>() && !a.is_instance_of::<PyBool>() {
        a.extract::<i64>().ok()?.checked_mul(1_000_000)?
    } else {
        return None;
    };
    (m > 0 && m <= MAX_MICROS).then_some(m)
}

#[pymethods]
impl ClientStream {
    #[new]
    fn py_new(prefix: &str, last_seq: u64) -> Self {
        ClientStream {
            prefix: prefix.as_bytes().into(),
            last_seq,
            new: 0,
            dups: 0,
            known: HashSet::new(),
            known_before: HashSet::new(),
            accepted: VecDeque::new(),
            pending: Numbers::default(),
            next_order: 0,
            staged: Vec::new(),
            frame: None,
            scanned: Vec::new(),
            cursor: 0,
        }
    }

    /// Takes in a `ServerFrame`: returns the new stream events up to the first event Python
    /// handles (rejections, acks, errors, answers to requests not held here) and that event,
    /// or None when the frame is done; `resume` goes on after it. A malformed frame raises
    /// DecodeError and changes nothing.
    fn feed<'py>(
        &mut self,
        data: &Bound<'py, PyBytes>,
    ) -> PyResult<(Bound<'py, PyList>, Option<Py<Event>>)> {
        let buf = data.as_bytes();
        let mut scanned = std::mem::take(&mut self.scanned);
        scanned.clear();
        let mut pos = 0;
        while pos < buf.len() {
            let field = next_field(buf, &mut pos).map_err(|e| decode_err("ServerFrame", e))?;
            if let (1, Val::Len(a, b)) = field {
                let (owned, env) =
                    parse_event(&buf[a..b]).map_err(|e| decode_err("BidEvent", e))?;
                scanned.push(Scanned { range: (a, b), owned, env });
            }
        }
        self.scanned = scanned;
        self.cursor = 0;
        self.frame = Some(data.clone().unbind());
        self.run(data.py())
    }

    /// Goes on with the frame after the event `feed` or `resume` stopped at.
    fn resume<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Option<Py<Event>>)> {
        self.run(py)
    }

    /// The stream events taken in and the duplicates dropped since the last call.
    fn counts(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.new), std::mem::take(&mut self.dups))
    }

    /// Whether `auction_id` was announced to this client (among the newest remembered).
    fn knows(&self, auction_id: &str) -> bool {
        self.known.contains(auction_id) || self.known_before.contains(auction_id)
    }

    /// Records an announced auction.
    fn announce(&mut self, auction_id: &str) {
        self.remember(auction_id);
    }

    /// Records an accepted bid's event (for a re-sent bid refused as already placed).
    fn accept(&mut self, event: &Bound<'_, Event>) {
        let e = event.get();
        self.remember_accepted(&e.data, e.env);
    }

    /// This client's latest accepted bid on `auction_id` among the recent ones.
    fn prior_acceptance(&self, py: Python<'_>, auction_id: &str) -> PyResult<Option<Py<Event>>> {
        match self.accepted.iter().rev().find(|(data, env)| auction_id_of(data, env) == auction_id)
        {
            Some((data, env)) => Ok(Some(Py::new(py, Event::new(data.clone(), *env))?)),
            None => Ok(None),
        }
    }

    /// Checks bids as `place_bids` takes them (call ids printable ASCII of 1 to 64 bytes,
    /// amounts ints or floats in (0, 10^6]) and keeps them for `commit`; returns the index of
    /// the first bad one, or -1.
    fn stage(&mut self, call_ids: &Bound<'_, PyList>, amounts: &Bound<'_, PyList>) -> i64 {
        self.staged.clear();
        if call_ids.len() != amounts.len() {
            return 0;
        }
        for (i, (c, a)) in call_ids.iter().zip(amounts.iter()).enumerate() {
            let id =
                c.cast::<PyString>().ok().and_then(|s| s.to_str().ok()).filter(|s| valid_id(s));
            match (id, micros_of(&a)) {
                (Some(id), Some(m)) => self.staged.push((id.into(), m)),
                _ => {
                    self.staged.clear();
                    return i as i64;
                }
            }
        }
        -1
    }

    /// The index of the first staged bid on an auction not announced to this client, or -1.
    fn first_unknown(&self) -> i64 {
        self.staged.iter().position(|(id, _)| !self.knows(id)).map_or(-1, |i| i as i64)
    }

    /// Holds the staged bids as pending, with request ids `prefix + (first + i)`, answered
    /// into `batch`; returns their frames (up to 4,096 bids each), in the protocol's encoding.
    fn commit<'py>(
        &mut self,
        batch: &Bound<'py, BidBatch>,
        first: u64,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let py = batch.py();
        let staged = std::mem::take(&mut self.staged);
        if staged.len() != batch.get().results.bind(py).len() {
            return Err(PyTypeError::new_err("commit: the batch does not match the staged bids"));
        }
        if first == 0 || first.checked_add(staged.len() as u64).is_none() {
            return Err(PyValueError::new_err(format!(
                "commit: request numbers from {first} are out of range"
            )));
        }
        let cur = batch.get().currency.as_bytes();
        self.pending.reserve(staged.len());
        let mut frames = Vec::new();
        let mut out = Vec::new();
        let mut rid = self.prefix.to_vec();
        let plen = rid.len();
        for (i, (aid, micros)) in staged.into_iter().enumerate() {
            let n = first + i as u64;
            rid.truncate(plen);
            put_number(&mut rid, n);
            put_place_entry(&mut out, &rid, aid.as_bytes(), cur, micros);
            if (i + 1) % FRAME_MESSAGES == 0 {
                frames.push(PyBytes::new(py, &out));
                out.clear();
            }
            self.next_order += 1;
            self.pending.insert(
                n,
                PendingBid {
                    batch: batch.clone().unbind(),
                    index: i as u32,
                    auction_id: aid,
                    micros,
                    order: self.next_order,
                    resent: false,
                },
            );
        }
        if !out.is_empty() {
            frames.push(PyBytes::new(py, &out));
        }
        Ok(frames)
    }

    /// Removes the pending bid of `request_id`: `(batch, index, auction_id, resent, entry)`
    /// (entry: its `ClientFrame.messages` entry, encoded), or None if not held here.
    fn take_pending<'py>(&mut self, py: Python<'py>, request_id: &str) -> Option<HeldBid<'py>> {
        let n = self.number(request_id.as_bytes())?;
        let p = self.pending.remove(&n)?;
        let mut out = Vec::new();
        self.entry(py, n, &p, &mut out);
        Some((p.batch, p.index, p.auction_id.into(), p.resent, PyBytes::new(py, &out)))
    }

    /// Drops the pending bids numbered `first` to `first + n - 1` (a call that gave up).
    fn forget(&mut self, first: u64, n: u64) {
        for k in first..first.saturating_add(n) {
            self.pending.remove(&k);
        }
    }

    /// The frames re-sending every pending bid in the order they were made (same ids), and
    /// how many bids; `mark` marks them as re-sent.
    fn resend<'py>(&mut self, py: Python<'py>, mark: bool) -> (Vec<Bound<'py, PyBytes>>, usize) {
        let mut held: Vec<(&u64, &mut PendingBid)> = self.pending.iter_mut().collect();
        held.sort_unstable_by_key(|(_, p)| p.order);
        let count = held.len();
        let mut frames = Vec::new();
        let mut out = Vec::new();
        for (i, (n, p)) in held.into_iter().enumerate() {
            p.resent |= mark;
            let cur = p.batch.bind(py).get().currency.as_bytes();
            let mut rid = self.prefix.to_vec();
            put_number(&mut rid, *n);
            put_place_entry(&mut out, &rid, p.auction_id.as_bytes(), cur, p.micros);
            if (i + 1) % FRAME_MESSAGES == 0 {
                frames.push(PyBytes::new(py, &out));
                out.clear();
            }
        }
        if !out.is_empty() {
            frames.push(PyBytes::new(py, &out));
        }
        (frames, count)
    }

    /// Answers every pending bid with `error` (the connection closed for good).
    fn fail_all(&mut self, error: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = error.py();
        for (_, p) in std::mem::take(&mut self.pending) {
            p.batch.bind(py).get().put(py, p.index as usize, error)?;
        }
        Ok(())
    }

    /// The number of pending bids held here.
    fn __len__(&self) -> usize {
        self.pending.len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for p in self.pending.values() {
            visit.call(&p.batch)?;
        }
        if let Some(f) = &self.frame {
            visit.call(f)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.pending.clear();
        self.accepted.clear();
        self.frame = None;
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Event>()?;
    m.add_class::<BidBatch>()?;
    m.add_class::<ClientStream>()
}
