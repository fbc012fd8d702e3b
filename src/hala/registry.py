"""MLflow model registry conventions: the one place the tag and alias names are defined.

Registration (training), gates (evaluation) and promotion (operations) all read and write model
versions through these names.
"""

from __future__ import annotations

# Aliases
CANDIDATE_ALIAS = "candidate"  # the newest registered version of a model
CHAMPION_ALIAS = "champion"  # the promoted version

# Model version tags written at registration
TAG_PIPELINE_RUN = "hala.pipeline_run"  # KFP run id
TAG_MLFLOW_RUN = "hala.mlflow_run"  # parent MLflow run id
TAG_PRESET = "hala.preset"  # preset name
TAG_PRESET_FINGERPRINT = "hala.preset_fingerprint"  # SHA-256 of the resolved preset
TAG_BASE_MODEL = "hala.base_model"  # hub id of the base model
TAG_BASE_REVISION = "hala.base_revision"
TAG_DATA_LINEAGE = "hala.data_lineage"  # JSON: training data fingerprints and counts
TAG_ROLE = "hala.role"  # "student" or "translator"

# Model version tags written by the evaluation gates
TAG_GATE_VERDICT = "hala.gate.verdict"  # "pass" or "fail"
TAG_GATE_REASONS = "hala.gate.reasons"  # JSON list of strings (why it failed; empty when it passed)

GATE_PASS = "pass"
GATE_FAIL = "fail"

# Model version tags written by `hala promote` (the latest promotion of that version)
TAG_PROMOTION_ALIAS = "hala.promotion.alias"  # the alias it was moved to ("champion")
TAG_PROMOTION_ACTOR = "hala.promotion.actor"  # who: --actor, else HALA_ACTOR, else USER
TAG_PROMOTION_TIME = "hala.promotion.time"  # when: UTC ISO 8601
TAG_PROMOTION_REASON = "hala.promotion.reason"  # why (required with --force)
TAG_PROMOTION_FORCED = "hala.promotion.forced"  # "true" when the gate verdict was overridden
TAG_PROMOTION_KIND = "hala.promotion.kind"  # "promote" or "rollback"
TAG_PROMOTION_PREVIOUS = "hala.promotion.previous"  # version that held the alias before ("" if none)

# Registered model tag: JSON list of promotion events of one alias, oldest first (for rollback)
TAG_PROMOTION_HISTORY_PREFIX = "hala.promotion.history."  # + alias

# Parent MLflow run of a pipeline run (written by the start stage; read by `hala rerun`)
TAG_KFP_RUN_LINK = "hala.kfp_run_link"  # Kubeflow UI URL of the KFP run
PARAM_IMAGE_PREFIX = "hala.image."  # + stage: the image reference compiled in (param or tag)
ARTIFACT_PRESET_JSON = "preset.json"  # the resolved preset JSON, byte for byte (run artifact)
PARAM_PRESET_JSON = "preset_json"  # the same as a param, where it fits (MLflow: 6000 characters)
