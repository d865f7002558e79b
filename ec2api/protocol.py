"""What a protocol hands to the dispatch: one call, read from one HTTP request.

A protocol (query.py, soap.py) has four methods: `accepts(request)` says whether a request is
spoken in it, `read(request, body)` returns a Call with its principal authenticated,
`respond(call, model, result, request_id)` and `fail(error, request_id, call)` return the HTTP
response of a result or of an EC2Error.
"""
import dataclasses

from .authentication import Principal


@dataclasses.dataclass
class Call:
    action: str | None                 # the EC2 operation, e.g. DescribeInstances
    params: dict                       # its parameters, spelled as the Query protocol spells them
    version: str | None = None         # the API version the client speaks
    principal: Principal | None = None
