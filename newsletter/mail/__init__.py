"""One rendered digest to the exact bytes of one RFC 5322 message: headers, DKIM, signed links."""
