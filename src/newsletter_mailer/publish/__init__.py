"""The web archive: every sent issue as a page, an index, an Atom feed and calendar files,
written as static files that ``newsletter serve`` or any static host can serve.

Nothing personal is published: pages are rendered from the parsed issue with the public
reader's values (``[publish.reader]``), never from a recipient's message.
"""

__all__: list[str] = []
