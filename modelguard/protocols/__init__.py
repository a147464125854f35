"""One reader per protocol shape: body in, :class:`Features` out, no I/O."""
