"""Models of srflow-plugin; importing this package registers SRFlowModel and RealSRFlowModel in BasicSR's
MODEL_REGISTRY and FID and KID as dataset-level validation metrics (``val.metrics.<name>.type: FID`` / ``KID``)."""
from srflow_plugin.metrics import FID, KID
from .realsrflow_model import RealSRFlowModel
from .srflow_model import SRFlowModel
from .validation import register_dataset_metric

register_dataset_metric(FID)
register_dataset_metric(KID)

__all__ = ['SRFlowModel', 'RealSRFlowModel']
