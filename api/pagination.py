"""The API's one pagination style: DRF's limit/offset, bounded."""

from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 200


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` above MAX_LIMIT is cut to it: unbounded, a client-chosen limit reaches SQL
    (`?limit=99999999999999999999` overflowed PostgreSQL's bigint LIMIT, a 500). A non-number
    falls back to the default page size, and an offset past the end gives an empty page before
    any query runs (DRF's own rules)."""

    max_limit = MAX_LIMIT
