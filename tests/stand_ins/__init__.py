"""Local stand-ins for the services a relay setup talks to (an OAuth2 token endpoint, provider APIs,
DNS), each written from the service's published documentation and started by a test on loopback."""
