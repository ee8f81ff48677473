# clearing kernels of rtbcore._fastpath (included by _fastpath.pyx)
