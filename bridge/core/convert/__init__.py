"""Pure converters between Session text and Matrix content: no I/O, no network, no database.

* :mod:`.text_to_matrix` — Session text → ``m.room.message`` content (pills, quote, links,
  replies, edits, disappearing-settings notices);
* :mod:`.matrix_to_text` — Matrix content (HTML or plain) → Session text and mentioned ids;
* :mod:`.mentions` — ``@<session id>`` tokens, ``m.mentions``, ghost mxids;
* :mod:`.names` — cleaned, templated, disambiguated display names and the relay format;
* :mod:`.links`, :mod:`.html_tree` — helpers of the two converters.
"""
