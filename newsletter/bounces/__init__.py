"""What comes back to the bounce address: reading each message (`reading`, `dsn`), how permanent a
failure it reports (`classify`), and what it changes for its reader (`handling`)."""
