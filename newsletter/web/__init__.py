"""`newsletter serve`: unsubscribe endpoints and the static archive, behind the operator's proxy."""
