"""Session groups v2 ("03 groups"): pure codecs and crypto (docs/groups-v2.md).

* :mod:`.bencode` — canonical bencoding with raw byte spans (§1.2)
* :mod:`.config_crypto` — config padding, zstd and ``config::encrypt`` (§1.7, §1.8)
* :mod:`.multipart` — multipart config messages (§1.10)
* :mod:`.config_data` — the ``&`` data model, normalising and diffs (§1.4, §1.5)
* :mod:`.config` — config messages: parse, verify, pick the current state, write (§1.3-§1.13)
* :mod:`.user_config_wrap` — protobuf wrapper of user configs, ns 2-5 (§1.11)
* :mod:`.info`, :mod:`.members` — typed views of groups::Info and groups::Members (§2)
* :mod:`.keys`, :mod:`.keyring` — keys messages, member keys, rekeys and the key list (§3)
* :mod:`.group_messages` — group message encryption and decryption (§4)
* :mod:`.multi_encrypt` — multi-recipient encryption, kicked notes (§4.4)
* :mod:`.subaccount` — member (subaccount) storage authentication and its checks (§5)
"""
