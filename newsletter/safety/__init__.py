"""Guards against hostile input and careless defaults: list names, secrets, file modes."""
