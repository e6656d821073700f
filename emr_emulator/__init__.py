"""An offline EMR: moto's AWS API in this process, with an engine that plays the cluster.

moto serves the API (S3, EMR, IAM, STS, ...) exactly as the tests already use it; what
moto leaves out of EMR, this package adds, in the same process so that it can reach
moto's backends:

* :mod:`emr_emulator.api` — a WSGI layer in front of moto's app that keeps EMR calls
  honest: a new cluster starts ``STARTING`` (moto makes it ``WAITING`` at once), steps
  wait ``PENDING`` for the engine, ``TerminateJobFlows`` passes through ``TERMINATING``,
  and it answers what moto 5.2.5 lacks (``CancelSteps``, ``Get/Put/RemoveAutoTermination
  Policy``).
* :mod:`emr_emulator.engine` — a background thread moving every cluster through
  STARTING -> BOOTSTRAPPING -> WAITING/RUNNING -> TERMINATING -> TERMINATED (or
  TERMINATED_WITH_ERRORS) with timestamps, checking bootstrap scripts, honouring
  ``AutoTerminationPolicy.IdleTimeout`` and running steps one at a time.
* :mod:`emr_emulator.steps` — runs a ``command-runner.jar`` ``spark-submit`` step for real
  on local Spark (see that module for the only rewrites), with S3 mirrored to a local
  folder (:mod:`emr_emulator.mirror`), and pushes its logs to the cluster's LogUri.
* :mod:`emr_emulator.serverless` (+ ``serverless_api``, ``serverless_jobs``,
  ``serverless_scheduler``) — EMR Serverless: applications CREATING -> CREATED -> STARTING ->
  STARTED -> STOPPING -> STOPPED with auto-start/auto-stop, job runs SUBMITTED -> [QUEUED,
  job concurrency and queuing] -> ... -> SUCCESS/FAILED/CANCELLED run for real through the
  same step runner and mirror, with AWS's log layout and billed usage; worker sizes outside
  AWS's table are refused.
* :mod:`emr_emulator.server` — :class:`Emulator`: the HTTP server on loopback + engine;
  ``python -m emr_emulator`` starts one.

* :mod:`emr_emulator.yarn` (+ ``yarn_conf``) — YARN's placement of each step's AM and
  executor containers on the cluster's NodeManager memory: the step runs with the executors
  granted, hangs when none fit, fails with Spark's message when one is too large.
* :mod:`emr_emulator.network` — the v2 managed policy's network rules at ``RunJobFlow``
  (tagged subnet, VPC, EMR's default security groups) and unknown security configurations.
* :mod:`emr_emulator.iam` — IAM enforcement (``enforce_iam``): every signed call is evaluated
  against its IAM user's identity-based policies, a job's S3 traffic against its role's.

What it cannot emulate (docs/emulator.md): IAM beyond identity-based policies,
EMRFS, YARN beyond its memory placement (vcores, node labels, preemption, a container killed
for outgrowing its memory), the bootstrap's real installs, spot, networking beyond the v2 tag
rules, EMR's start-up time; for EMR Serverless also pre-initialised and maximum capacity,
executor scaling, retries, custom images, and whether a packed environment
(``spark.archives``) really runs there: it is checked, and used only when it was built for
this very machine.

Nothing under ``dags/``, ``include/`` or ``spark_jobs/`` imports this package: the
pipeline talks to it only through the AWS API (an ``endpoint_url``), as it talks to AWS.
"""

from emr_emulator.server import Emulator, EmulatorSettings

__all__ = ["Emulator", "EmulatorSettings"]
