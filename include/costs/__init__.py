"""What a run costs: pre-run estimates, the budget guard, actual costs.

* :mod:`include.costs.throughput`: images/s per vCPU by runtime, start-up times.
* :mod:`include.costs.cluster`: a cluster's cost, from ``describe_cluster`` shapes.
* :mod:`include.costs.serverless`: a Serverless job run's billed usage priced; its estimate.
* :mod:`include.costs.budget`: the budget guard (estimate before any cluster, refusal).

The price tables are :mod:`include.capacity.prices`.
"""
