//! `_rtbcore._Gateway`: starts and stops the exchange server (`rtbcore-gateway`) on its own
//! tokio runtime threads. No Python runs per message; Python configures it, opens auctions
//! and takes the results.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rtbcore_gateway::pbjson_types;
use rtbcore_gateway::{Config, Gateway, Options};
use rtbcore_proto::v1::{Money, OpenAuction};

use crate::detach;
use crate::errors::{InvalidInputError, QueueClosed, RtbcoreOSError};

#[pyclass(name = "_Gateway", module = "_rtbcore", frozen)]
pub struct PyGateway {
    inner: Mutex<Option<Gateway>>,
    host: String,
    port: u16,
    dev_key: Option<String>,
    event_log: String,
}

impl PyGateway {
    fn with<T>(&self, f: impl FnOnce(&Gateway) -> PyResult<T>) -> PyResult<T> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(gw) if gw.is_running() => f(gw),
            _ => Err(QueueClosed::new_err("the exchange is stopped")),
        }
    }
}

#[pymethods]
impl PyGateway {
    /// Validates the configuration (JSON text of the `exchange.toml` tables; relative paths
    /// resolve against `base_dir`), binds the port and starts serving.
    #[new]
    #[pyo3(signature = (config_json, base_dir, dev_key = false, threads = 2))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        base_dir: &str,
        dev_key: bool,
        threads: usize,
    ) -> PyResult<Self> {
        let cfg = Config::from_json(config_json, Path::new(base_dir))
            .map_err(|e| InvalidInputError::new_err(format!("exchange config: {e}")))?;
        let gw = detach(py, move || Gateway::start(Options { config: cfg, dev_key, threads }))
            .map_err(RtbcoreOSError::new_err)?;
        let addr = gw.local_addr();
        Ok(PyGateway {
            host: addr.ip().to_string(),
            port: addr.port(),
            dev_key: gw.dev_key().map(str::to_string),
            event_log: gw.event_log_path().display().to_string(),
            inner: Mutex::new(Some(gw)),
        })
    }

    #[getter]
    fn host(&self) -> String {
        self.host.clone()
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The development API key (buyer "dev", every scope), if one was asked for.
    #[getter]
    fn dev_key(&self) -> Option<String> {
        self.dev_key.clone()
    }

    #[getter]
    fn event_log_path(&self) -> String {
        self.event_log.clone()
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(Gateway::is_running)
    }

    /// Opens an auction; returns `(auction_id, deadline_unix_s)`. Errors name the field.
    #[pyo3(signature = (auction_id = "", attributes = None, floor_micros = 0, tmax_s = None, expected_bids = 0))]
    fn open_auction(
        &self,
        auction_id: &str,
        attributes: Option<HashMap<String, String>>,
        floor_micros: i64,
        tmax_s: Option<f64>,
        expected_bids: u32,
    ) -> PyResult<(String, f64)> {
        let tmax = match tmax_s {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => {
                let d = Duration::from_secs_f64(t);
                Some(pbjson_types::Duration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                })
            }
            Some(t) => {
                return Err(InvalidInputError::new_err(format!(
                    "tmax_s = {t}: must be a number of seconds > 0"
                )))
            }
        };
        let o = OpenAuction {
            auction_id: auction_id.to_string(),
            attributes: attributes.unwrap_or_default(),
            floor: Some(Money { currency: String::new(), micros: floor_micros }),
            tmax,
            expected_bids,
        };
        self.with(|gw| {
            let opened = gw.open_auction(&o).map_err(|r| {
                InvalidInputError::new_err(format!(
                    "open_auction: {} ({})",
                    r.msg,
                    r.reason.as_str_name()
                ))
            })?;
            let d = opened.deadline.unwrap_or_default();
            Ok((opened.auction_id, d.seconds as f64 + d.nanos as f64 * 1e-9))
        })
    }

    /// The next auction result as a dict, waiting up to `timeout_s` (None when there is none,
    /// or the exchange is stopped). Waits with the GIL released.
    #[pyo3(signature = (timeout_s = 0.0))]
    fn next_result<'py>(
        &self,
        py: Python<'py>,
        timeout_s: f64,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        if !(timeout_s.is_finite() && timeout_s >= 0.0) {
            return Err(InvalidInputError::new_err(format!(
                "timeout_s = {timeout_s}: must be >= 0"
            )));
        }
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(gw) = g.as_ref() else { return Ok(None) };
        let out = detach(py, || gw.next_outcome(Duration::from_secs_f64(timeout_s)));
        drop(g);
        let Some(o) = out else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("auction_id", o.auction_id)?;
        d.set_item("attributes", o.attributes)?;
        let (buyer, bid) = o.winner.map_or((None, None), |(b, i)| (Some(b), Some(i)));
        d.set_item("winner", buyer)?;
        d.set_item("bid_id", bid)?;
        d.set_item("price_micros", o.price_micros)?;
        d.set_item("n_bids", o.n_bids)?;
        d.set_item("closed_by", o.closed_by)?;
        d.set_item("publisher", o.publisher)?;
        Ok(Some(d))
    }

    /// The `/metrics` text (Prometheus format).
    fn metrics_text(&self) -> PyResult<String> {
        self.with(|gw| Ok(gw.metrics_text()))
    }

    /// Auctions open now.
    fn auctions_open(&self) -> PyResult<usize> {
        self.with(|gw| Ok(gw.auctions_open()))
    }

    /// Drains and stops (see the exchange docs); idempotent. Runs with the GIL released.
    /// Results of the auctions it closed stay readable with `next_result`.
    fn stop(&self, py: Python<'_>) {
        detach(py, || {
            if let Some(gw) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                gw.stop();
            }
        });
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGateway>()
}
