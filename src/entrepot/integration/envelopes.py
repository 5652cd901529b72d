"""The CloudEvents JSON body of an event, written straight as text for webhook deliveries.

`outbox.envelope` builds the envelope as a dict, so the worker would parse each
event's `data` from the database only to serialise it again with the rest.
`envelope_json` takes `data` as the JSON text the database holds and writes
the same members, in the same order, around it: the body is what
`json.dumps(envelope(row), separators=(",", ":"))` gives, save the
whitespace inside `data` on PostgreSQL (jsonb's text form).
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _quote  # json.dumps' own string encoder

from entrepot.integration.feed import FeedRow
from entrepot.integration.outbox import SPECVERSION

_SPECVERSION = _quote(SPECVERSION)


def envelope_json(row: FeedRow) -> str:
    """The CloudEvents 1.0 body of an outbox row read by `feed.event_rows_after`."""
    kind = _quote(row.type)
    return (
        f'{{"specversion":{_SPECVERSION},"id":"{row.id}","source":{_quote(row.source)},"type":{kind},'
        f'"subject":{_quote(row.subject)},"time":{_quote(row.time.isoformat().replace("+00:00", "Z"))},'
        f'"datacontenttype":"application/json","dataschema":{_quote("/api/v1/event-types/" + row.type)},'
        f'"tenantid":"{row.tenant_id}","sequence":"{row.seq}","data":{row.data_json}}}'
    )
