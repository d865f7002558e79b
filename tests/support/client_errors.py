"""The EC2 error code a boto3 call fails with, for tests that expect a refusal."""
import botocore.exceptions
import pytest


def error_code(call, *args, **kwargs):
    """The error code a client call fails with (the test fails if it succeeds)."""
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(*args, **kwargs)
    return raised.value.response['Error']['Code']
