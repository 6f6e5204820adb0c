"""The errors of path sharing."""


class DatabaseUnavailableError(RuntimeError):
    """A shared path cannot be opened: another process holds it without
    sharing it, its host does not answer, or the runtime folder is not
    private."""


class UntrustedPeerError(DatabaseUnavailableError):
    """The process at the other end of a host socket belongs to another
    user (and no sharing group allows it)."""
