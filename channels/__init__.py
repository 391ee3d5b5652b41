"""Built-in channel types; importing this package registers them."""

from channels.mllp import listener, sender  # noqa: F401
