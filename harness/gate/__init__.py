"""The pre-release gate: two runs side by side, per probe and per figure (``ingress-harness gate``).

``compare`` reads two results documents and lists every difference between them, each
classified as expected (the oracle predicts it), unexpected (it fails the gate) or noise;
``report`` writes gate.json and the gate's HTML report; ``cli`` runs the suites twice and
compares.
"""
