"""The sections of ``rtbcore demo``, in the order it runs them; each has ``run(args)``."""
