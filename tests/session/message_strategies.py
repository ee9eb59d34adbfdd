"""Hypothesis strategies for the message model (shared by the session tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from bridge.session import messages as msg

UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
UINT32 = st.integers(min_value=0, max_value=2**32 - 1)
# Timestamps as the apps send them: 0 means "unset" for sigTimestamp (§2.11), so avoid it.
TIMESTAMPS = st.integers(min_value=1, max_value=2**64 - 1)
SESSION_IDS = st.binary(min_size=32, max_size=32).map(lambda b: "05" + b.hex())
TEXT = st.text(max_size=40)
OPT_TEXT = st.none() | TEXT
SMALL_BYTES = st.binary(max_size=80)


def _optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


profiles = st.builds(
    msg.Profile,
    display_name=OPT_TEXT,
    avatar_url=OPT_TEXT,
    avatar_key=_optional(st.binary(min_size=32, max_size=32)),
    updated_seconds=_optional(UINT64),
)

attachments = st.builds(
    msg.Attachment,
    url=OPT_TEXT,
    key=st.binary(max_size=64),
    size=_optional(UINT32),
    digest=_optional(st.binary(max_size=32)),
    content_type=OPT_TEXT,
    file_name=OPT_TEXT,
    flags=UINT32,
    width=_optional(UINT32),
    height=_optional(UINT32),
    caption=OPT_TEXT,
)

expiries = st.builds(msg.Expiry, st.sampled_from(msg.ExpiryMode), UINT32)
_common = {"expiry": _optional(expiries), "sig_timestamp": _optional(TIMESTAMPS)}
_ids = st.lists(SESSION_IDS, max_size=3).map(tuple)

visible_messages = st.builds(
    msg.VisibleMessage,
    body=OPT_TEXT,
    attachments=st.lists(attachments, max_size=2).map(tuple),
    quote=_optional(st.builds(msg.Quote, UINT64, SESSION_IDS, OPT_TEXT)),
    previews=st.lists(
        st.builds(msg.LinkPreview, TEXT, OPT_TEXT, _optional(attachments)), max_size=2
    ).map(tuple),
    profile=_optional(profiles),
    sync_target=_optional(SESSION_IDS),
    blocks_community_message_requests=st.none() | st.booleans(),
    **_common,
)

group_updates = st.one_of(
    st.builds(
        msg.GroupInvite,
        SESSION_IDS,
        TEXT,
        SMALL_BYTES,
        SMALL_BYTES,
        _optional(profiles),
        **_common,
    ),
    st.builds(msg.GroupPromote, SMALL_BYTES, TEXT, _optional(profiles), **_common),
    st.builds(
        msg.GroupInfoChange,
        st.sampled_from(msg.GroupInfoChangeType),
        SMALL_BYTES,
        OPT_TEXT,
        _optional(UINT32),
        **_common,
    ),
    st.builds(
        msg.GroupMemberChange,
        st.sampled_from(msg.GroupMemberChangeType),
        _ids,
        SMALL_BYTES,
        st.booleans(),
        **_common,
    ),
    st.builds(msg.GroupMemberLeft, **_common),
    st.builds(msg.GroupMemberLeftNotification, **_common),
    st.builds(msg.GroupInviteResponse, st.booleans(), _optional(profiles), **_common),
    st.builds(
        msg.GroupDeleteMemberContent,
        _ids,
        st.lists(TEXT, max_size=3).map(tuple),
        _optional(SMALL_BYTES),
        **_common,
    ),
)

messages: st.SearchStrategy[msg.Message] = st.one_of(
    visible_messages,
    st.builds(
        msg.Reaction, UINT64, SESSION_IDS, TEXT, st.sampled_from(msg.ReactionAction), **_common
    ),
    st.builds(msg.Unsend, UINT64, SESSION_IDS, **_common),
    st.builds(msg.Typing, st.booleans(), UINT64, **_common),
    st.builds(msg.ReadReceipt, st.lists(UINT64, max_size=5).map(tuple), **_common),
    st.builds(msg.MessageRequestResponse, st.booleans(), _optional(profiles), **_common),
    st.builds(
        msg.DisappearingSettings,
        st.sampled_from(msg.ExpiryMode),
        UINT32,
        sig_timestamp=_optional(TIMESTAMPS),
    ),
    st.builds(
        msg.DataExtraction, st.sampled_from(msg.DataExtractionKind), _optional(UINT64), **_common
    ),
    st.builds(msg.CommunityInvitation, TEXT, TEXT, **_common),
    group_updates,
)
