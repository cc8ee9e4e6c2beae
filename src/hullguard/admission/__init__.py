"""Kubernetes validating and mutating admission webhook (admission.k8s.io/v1).

config.py loads the policy file, workloads.py finds the containers of each kind, engine.py turns an
AdmissionReview into a decision, server.py speaks HTTPS, metrics.py and manifests.py do what their
names say.
"""
