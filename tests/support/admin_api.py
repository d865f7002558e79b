"""boto3 clients of the administrators' actions: ec2api/admin_model.json served to botocore's loader
as the service `reservoir-admin`, so tests call the admin API as any SDK would, signed as EC2."""
import functools
import shutil
import tempfile
from pathlib import Path

import boto3
import botocore.session
from botocore.config import Config

from ec2api.service_model import ADMIN_MODEL_PATH, ADMIN_SERVICE, admin_model


@functools.cache
def model_directory():
    """A loader search path holding the model as <service>/<api version>/service-2.json."""
    root = Path(tempfile.mkdtemp(prefix='reservoir-admin-model-'))
    target = root / ADMIN_SERVICE / admin_model().api_version / 'service-2.json'
    target.parent.mkdir(parents=True)
    shutil.copyfile(ADMIN_MODEL_PATH, target)
    return str(root)


def admin_client(endpoint, access_key_id, secret_access_key, region, **config):
    session = botocore.session.get_session()
    session.get_component('data_loader').search_paths.insert(0, model_directory())
    return boto3.Session(botocore_session=session).client(
        ADMIN_SERVICE, endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key, config=Config(retries={'max_attempts': 1}, **config))
