"""Helpers shared by the test modules (not tests themselves).

- ``devices``: the devices a test runs on (``cpu``, and ``cuda`` where torch sees one) and their tolerances;
- ``flow_check``: invertibility and log-determinants of a flow layer against an autograd Jacobian;
- ``fault_injection``: failures injected into saving, reading and training;
- ``train``: tiny option files, datasets and subprocess environments for training and testing runs;
- ``tiny``: the tiny SRFlowNet, its checkpoint and small smooth test images;
- ``release``: the SRFlow release's reference fixtures (``../shared/reference``) and networks built from them;
- ``features``: small image sets and a stand-in feature network for FID, KID and the bootstrap.

Fixtures shared by several modules (``pair``, ``random_hub``, ``lpips_hub``, ``device``) are in ``tests/conftest.py``.
"""
