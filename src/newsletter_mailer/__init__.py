"""newsletter_mailer: compose an email newsletter from one Markdown issue file and send it to
every subscriber, resumably, with a signed one-click unsubscribe link each."""

__version__ = "0.1.0"
