//! Python binding of `rtbcore_core::floors::FloorLearner`, the floor learner the exchange server
//! runs. Private (`_FloorLearner`): it exists so that tests can hold it against
//! `rtbcore.floors.FloorOptimizer` on the same logs.

use numpy::PyArray1;
use pyo3::prelude::*;
use rtbcore_core::floors::{FloorLearner, FloorParams};

use crate::clearing::{slice, view};
use crate::to_pyerr;

#[pyclass(module = "_rtbcore", name = "_FloorLearner")]
pub struct PyFloorLearner {
    l: FloorLearner,
}

#[pymethods]
impl PyFloorLearner {
    #[new]
    #[pyo3(signature = (n_keys, grid, *, half_life, explore, explore_steps, min_fill, min_weight, initial, seed))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_keys: usize,
        grid: &Bound<'_, PyAny>,
        half_life: f64,
        explore: f64,
        explore_steps: u32,
        min_fill: f64,
        min_weight: f64,
        initial: f64,
        seed: u64,
    ) -> PyResult<Self> {
        let g = view::<f64>("grid", "float64", grid)?;
        let p =
            FloorParams { half_life, explore, explore_steps, min_fill, min_weight, initial, seed };
        Ok(PyFloorLearner { l: FloorLearner::new(slice(&g), n_keys, &p).map_err(to_pyerr)? })
    }

    /// Learns rows (key, floor applied, price, sold) in order, then refreshes the touched keys.
    fn update(
        &mut self,
        key: &Bound<'_, PyAny>,
        floor: &Bound<'_, PyAny>,
        price: &Bound<'_, PyAny>,
        sold: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let k = view::<i64>("key", "int64", key)?;
        let f = view::<f64>("floor", "float64", floor)?;
        let p = view::<f64>("price", "float64", price)?;
        let s = view::<bool>("sold", "bool", sold)?;
        self.l.update(slice(&k), slice(&f), slice(&p), slice(&s)).map_err(to_pyerr)
    }

    /// The floors for auctions of the given keys, one lookup after another.
    fn lookup<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        explore: bool,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let k = view::<i64>("key", "int64", key)?;
        let n = self.l.n_keys() as u64;
        let keys = slice(&k);
        if let Some(i) = keys.iter().position(|&x| x < 0 || x as u64 >= n) {
            return Err(crate::clearing::bad("key", format!("key[{i}] = {}: not a key", keys[i])));
        }
        let out: Vec<f64> = keys.iter().map(|&x| self.l.lookup(x as usize, explore)).collect();
        Ok(PyArray1::from_vec(py, out))
    }

    fn add_key(&mut self) -> usize {
        self.l.add_key()
    }

    #[getter]
    fn floors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.l.floors())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFloorLearner>()?;
    Ok(())
}
