"""tenure: churn prediction and personalisation with its own MLOps loop.

Every room is a subpackage: ``tenure.features``, ``tenure.feature_repo``, ``tenure.registry``,
``tenure.training``, ``tenure.serving``, ``tenure.monitoring``, ``tenure.pipelines``. In a checkout
the rooms are the top-level folders of DESIGN.md's layout and ``tenure/<room>`` is a symbolic link
to each; the wheel ships them as real folders under ``tenure/``, so installing tenure adds one
top-level package and nothing that can shadow a user's own ``features`` or ``training``.
"""
