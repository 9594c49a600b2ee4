"""The offline report: every branch's metrics drawn into one self-contained HTML page.

``inputs`` reads each section's files (one small function per file, ``ArtifactError`` naming a
missing or malformed one), ``figures`` draws tables into PNG bytes with matplotlib's Agg canvas,
``sections`` turns what was read into titled blocks and ``page`` writes them as HTML with every
image inlined as a ``data:`` URI, so the page needs no network and no other file.
"""
