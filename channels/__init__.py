"""Built-in channel types; importing this package registers them."""

from channels import mqtt, worklist  # noqa: F401
from channels.dicom_mwl import scp  # noqa: F401
from channels.mllp import listener, sender  # noqa: F401
from channels.reconciler import source  # noqa: F401
