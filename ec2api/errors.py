"""The one error type of the front-end, and the HTTP status each EC2 error code carries."""

# Codes whose HTTP status is not the default 400. AWS keys clients on <Code>; the status matters to
# retry logic (botocore retries 5xx and throttling codes), so keep these faithful.
_STATUS_BY_CODE = {
    'AuthFailure': 401,
    'MissingAuthenticationToken': 401,
    'SignatureDoesNotMatch': 403,
    'UnauthorizedOperation': 403,
    'OptInRequired': 403,
    'DryRunOperation': 412,
    'RequestLimitExceeded': 503,
    'InternalError': 500,
    'ServiceUnavailable': 503,
    'Unavailable': 503,
}


class EC2Error(Exception):
    """An EC2 error response: a code clients switch on, a message people read, an HTTP status."""

    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_BY_CODE.get(code, 400)

    def __repr__(self):
        return f'EC2Error({self.code!r}, {self.message!r}, {self.status})'
