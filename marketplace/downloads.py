"""Serving an uploaded file (an idea attachment, an asset's shared file) to the one person the
policy let through: the response every such download gets."""
from __future__ import annotations

from flask import Response, send_file


def private_download(fh, content_type: str, filename: str) -> Response:
    """``fh`` as an attachment named ``filename``. Never cached (the next person to ask may
    not be allowed), never sniffed or rendered as a page by the browser (an upload is not
    trusted content), and not conditional (no ETag that would outlive a revoked access)."""
    resp = send_file(fh, mimetype=content_type, as_attachment=True, download_name=filename,
                     max_age=0, conditional=False, etag=False)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
