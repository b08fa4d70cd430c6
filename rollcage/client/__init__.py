"""The remote SDK: the :class:`~rollcage.Sandbox` API over a rollcage server's REST API.

with RemoteSandbox(SandboxConfig(memory="512m"), server="http://host:8080", token=...) as sb:
    sb.run("echo hi").output
"""

from rollcage.client.remote import RemoteSandbox, ServerError

__all__ = ["RemoteSandbox", "ServerError"]
