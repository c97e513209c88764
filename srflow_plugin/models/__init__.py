"""Models of srflow-plugin; importing this package registers SRFlowModel and RealSRFlowModel in BasicSR's
MODEL_REGISTRY and FID as a dataset-level validation metric (``val.metrics.<name>.type: FID``)."""
from srflow_plugin.metrics import FID
from .realsrflow_model import RealSRFlowModel
from .srflow_model import SRFlowModel
from .validation import register_dataset_metric

register_dataset_metric(FID)

__all__ = ['SRFlowModel', 'RealSRFlowModel']
