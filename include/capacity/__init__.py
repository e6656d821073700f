"""What the cloud offers and what the job needs of it: tables and sizing, pure.

The bottom of include/'s layers (above :mod:`include.config` only): the trigger-form Params'
checks (:mod:`include.params`) size and price with it, and so do the costs and the EMR
packages; it imports nothing else of include/.

* :mod:`include.capacity.instance_types`: vCPUs, memory, YARN memory and arch of each EC2
  instance type.
* :mod:`include.capacity.prices`: cluster (EC2 + EMR uplift) and EMR Serverless price tables
  by region; ``ALLOWED_INSTANCE_TYPES``.
* :mod:`include.capacity.runtimes`: the model runtimes' CPU arches and Python-worker memory.
* :mod:`include.capacity.worker_memory`: a Python worker's memory and the JVM heap beside it
  (what both backends solve).
* :mod:`include.capacity.cluster_sizing`: executors sized for YARN on a cluster
  (``size_executors``).
* :mod:`include.capacity.serverless_sizing`: the worker sizes EMR Serverless allows and the
  Spark confs derived from them.
"""
