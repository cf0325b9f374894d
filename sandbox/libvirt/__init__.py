"""libvirt back end of the sandbox: domain XML, connection boundary, driver, warm pool."""
from .driver import LibvirtDriver

__all__ = ["LibvirtDriver"]
