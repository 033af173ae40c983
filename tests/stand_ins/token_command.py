"""A token command as a user would write one: posts a grant to the token endpoint with httpx
and prints the endpoint's JSON (access_token, expires_in). The client secret and refresh token
come from the environment, as they must.

    python token_command.py URL [client_credentials|refresh_token]
"""

from __future__ import annotations

import os
import sys

import httpx


def main() -> int:
    url = sys.argv[1]
    grant = sys.argv[2] if len(sys.argv) > 2 else "client_credentials"
    form = {
        "grant_type": grant,
        "client_id": "newsletter-test-client",
        "client_secret": os.environ.get("TEST_OAUTH_CLIENT_SECRET", ""),
    }
    if grant == "refresh_token":
        form["refresh_token"] = os.environ.get("TEST_OAUTH_REFRESH_TOKEN", "")
    reply = httpx.post(url, data=form, timeout=10)
    if reply.status_code != 200:
        print(f"token endpoint said {reply.status_code}: {reply.json().get('error')}", file=sys.stderr)
        return 3
    print(reply.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
