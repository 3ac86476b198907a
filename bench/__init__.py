"""Load benchmarks of the SM-DP+ (issue 3: CPU per download, latency, memory).

- :mod:`bench.download`: the ``python -m bench.download`` command, complete
  SGP.22 3.1.3 downloads with our software eUICC against a real server;
- :mod:`bench.datadir`: a fresh data folder (test PKI, profile of a chosen
  size, extra eUICC identities, pre-filled session store);
- :mod:`bench.server`: starting and stopping the server process;
- :mod:`bench.procstat`: the server's CPU time and memory from ``/proc``;
- :mod:`bench.load`: the load generator (threads with kept-alive connections);
- :mod:`bench.report`: percentiles, the result table and the JSON record;
- :mod:`bench.profiled_server`: the server under cProfile, switched on and
  off by signals around the measured downloads;
- :mod:`bench.profile_report`: top functions of a server profile (py-spy
  collapsed stacks or a cProfile dump), overall and per ES9+ function.
"""
