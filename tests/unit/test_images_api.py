"""Users' images through real boto3 clients and the signed upload endpoint, in one process:
upload, RegisterImage, visibility and launch permissions, attributes, CopyImage, DeregisterImage
and the file's lifetime."""
import gzip
import hashlib
import shutil
import subprocess
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.client_errors import error_code

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')


class UnsignedPayload(SigV4Auth):
    def payload(self, request):
        return 'UNSIGNED-PAYLOAD'


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '32M'], check=True)
    return path.read_bytes()


def upload_request(world, user, method, name, body=b'', headers=None, signer=UnsignedPayload,
                   secret=None):
    """Send a signed request to the upload endpoint of the in-process app."""
    account = world.users[user]
    path = '/upload/' + urllib.parse.quote(name, safe='')
    request = AWSRequest(method=method, url=f'http://localhost{path}', headers={
        'Host': 'localhost', 'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD', **(headers or {})})
    credentials = Credentials(account.access_key_id, secret or account.secret_access_key)
    signer(credentials, 'ec2', world.cloud.config.region).add_auth(request)
    return world.web.open(path, method=method, headers=dict(request.headers.items()), data=body)


def upload(world, user, name, data, **headers):
    """PUT the whole object in one request."""
    return upload_request(world, user, 'PUT', name, data, {
        'x-reservoir-sha256': hashlib.sha256(data).hexdigest(), **headers})


def error_of(response):
    text = response.get_data(as_text=True)
    assert text.count('<Error>') == 1 and '<Response><Errors><Error><Code>' in text
    return text.split('<Code>')[1].split('</Code>')[0]


def register(world, ec2, user, name, data, **arguments):
    assert upload(world, user, name, data).status_code == 200
    return ec2.register_image(Name=name, ImageLocation=name, **arguments)['ImageId']


def visible_ids(ec2):
    return {image['ImageId'] for image in ec2.describe_images()['Images']}


# --- the upload endpoint -------------------------------------------------------------------------

def test_an_upload_reports_its_state_and_registers(world, disk):
    world.account('alice')
    response = upload(world, 'alice', 'my disk (1)', disk)
    assert response.status_code == 200
    assert response.headers['x-reservoir-upload-state'] == 'ready'
    assert response.headers['x-reservoir-received-bytes'] == str(len(disk))
    assert '<diskFormat>qcow2</diskFormat>' in response.get_data(as_text=True)
    head = upload_request(world, 'alice', 'HEAD', 'my disk (1)')
    assert (head.status_code, head.headers['x-reservoir-total-bytes']) == (200, str(len(disk)))
    ec2 = world.client('alice')
    image_id = ec2.register_image(Name='my disk (1)', ImageLocation='my disk (1)', Architecture='x86_64',
                                  Description='uploaded')['ImageId']
    (image,) = ec2.describe_images(ImageIds=[image_id])['Images']
    assert (image['State'], image['Public'], image['OwnerId']) == ('available', False, world.account('alice'))
    assert (image['RootDeviceName'], image['Description']) == ('/dev/sda1', 'uploaded')
    assert upload_request(world, 'alice', 'HEAD', 'my disk (1)').status_code == 404   # consumed


def test_an_upload_in_pieces_with_content_range_and_gzip(world, disk):
    world.account('alice')
    compressed = gzip.compress(disk)
    digest = hashlib.sha256(compressed).hexdigest()
    created = upload_request(world, 'alice', 'PUT', 'zipped', b'', {
        'x-reservoir-sha256': digest, 'Content-Range': f'bytes */{len(compressed)}'})
    assert (created.status_code, created.headers['x-reservoir-received-bytes']) == (200, '0')
    middle = len(compressed) // 2
    for start, end in ((0, middle), (middle, len(compressed))):
        response = upload_request(world, 'alice', 'PUT', 'zipped', compressed[start:end], {
            'x-reservoir-sha256': digest, 'Content-Range': f'bytes {start}-{end - 1}/{len(compressed)}'})
        assert response.status_code == 200
    assert response.headers['x-reservoir-upload-state'] == 'ready'
    stale = upload_request(world, 'alice', 'PUT', 'zipped', compressed[:10], {
        'x-reservoir-sha256': digest, 'Content-Range': f'bytes 0-9/{len(compressed)}'})
    assert (stale.status_code, error_of(stale)) == (409, 'InvalidUpload.Complete')


def test_uploads_must_be_signed_with_the_digest(world, disk):
    world.account('alice')
    digest = hashlib.sha256(disk).hexdigest()
    anonymous = world.web.put('/upload/anon', data=disk, headers={'x-reservoir-sha256': digest})
    assert (anonymous.status_code, error_of(anonymous)) == (401, 'MissingAuthenticationToken')
    forged = upload_request(world, 'alice', 'PUT', 'forged', disk, {'x-reservoir-sha256': digest},
                            secret='x' * 40)
    assert error_of(forged) == 'AuthFailure'
    # A signature over the body's hash cannot be checked before the streamed body is read.
    hashed = upload_request(world, 'alice', 'PUT', 'hashed', disk, {
        'x-reservoir-sha256': digest, 'X-Amz-Content-SHA256': hashlib.sha256(disk).hexdigest()}, SigV4Auth)
    assert (hashed.status_code, error_of(hashed)) == (400, 'InvalidRequest')
    unsigned_digest = upload_request(world, 'alice', 'PUT', 'unsigned', disk)
    assert error_of(unsigned_digest) == 'AuthFailure'
    assert world.cloud.uploads.list() == []


@pytest.mark.parametrize('content_range, code, status', [
    ('bytes 0-9/100', 'InvalidUpload.Range', 416),             # 10 bytes promised, the body differs
    ('bytes=0-', 'InvalidUpload.Range', 416),
    ('bytes 50-99/10', 'InvalidUpload.Range', 416),
])
def test_malformed_ranges_are_refused(world, disk, content_range, code, status):
    world.account('alice')
    response = upload(world, 'alice', 'ranged', disk[:64], **{'Content-Range': content_range})
    assert (response.status_code, error_of(response)) == (status, code)
    assert world.cloud.uploads.list() == []


def test_junk_is_refused_with_a_clear_ec2_error(world):
    world.account('alice')
    response = upload(world, 'alice', 'junk', b'not a disk at all\n' * 1000)
    assert (response.status_code, error_of(response)) == (400, 'InvalidImage.Format')
    assert "'junk' is not a disk image" in response.get_data(as_text=True)
    assert upload_request(world, 'alice', 'HEAD', 'junk').status_code == 404


def test_an_upload_can_be_abandoned(world, disk):
    world.account('alice')
    response = upload_request(world, 'alice', 'PUT', 'half', disk[:100], {
        'x-reservoir-sha256': hashlib.sha256(disk).hexdigest(), 'Content-Range': f'bytes 0-99/{len(disk)}'})
    assert response.headers['x-reservoir-upload-state'] == 'receiving'
    assert upload_request(world, 'alice', 'DELETE', 'half').status_code == 204
    assert upload_request(world, 'alice', 'DELETE', 'half').status_code == 404


# --- RegisterImage -------------------------------------------------------------------------------

def test_register_image_refusals(world, disk):
    ec2 = world.client('alice')
    assert error_code(ec2.register_image, Name='x1y') == 'MissingParameter'
    assert error_code(ec2.register_image, Name='nothing', ImageLocation='nothing') == 'InvalidUpload.NotFound'
    assert error_code(ec2.register_image, Name='ebs', ImageLocation='ebs', RootDeviceName='/dev/sda1',
                      BlockDeviceMappings=[{'DeviceName': '/dev/sda1',
                                            'Ebs': {'SnapshotId': 'snap-0123456789abcdef0'}}]) == \
        'InvalidParameterValue'
    register(world, ec2, 'alice', 'base', disk)
    assert upload(world, 'alice', 'again', disk).status_code == 200
    assert error_code(ec2.register_image, Name='base', ImageLocation='again') == 'InvalidAMIName.Duplicate'
    assert error_code(ec2.register_image, Name='again', ImageLocation='again',
                      KernelId='aki-0123456789abcdef0') == 'InvalidAMIID.NotFound'


def test_a_machine_image_boots_with_an_uploaded_kernel_and_ramdisk(world, disk):
    ec2 = world.client('alice')
    assert upload(world, 'alice', 'vmlinuz', b'kernel bytes' * 100,
                  **{'x-reservoir-image-type': 'kernel'}).status_code == 200
    kernel = ec2.register_image(Name='vmlinuz', ImageLocation='vmlinuz')['ImageId']
    assert upload(world, 'alice', 'initrd', b'ramdisk bytes' * 100,
                  **{'x-reservoir-image-type': 'ramdisk'}).status_code == 200
    ramdisk = ec2.register_image(Name='initrd', ImageLocation=f"{world.account('alice')}/initrd")['ImageId']
    machine = register(world, ec2, 'alice', 'root', disk, KernelId=kernel, RamdiskId=ramdisk,
                       RootDeviceName='/dev/vda')
    (image,) = ec2.describe_images(ImageIds=[machine])['Images']
    assert (kernel[:4], ramdisk[:4]) == ('aki-', 'ari-')
    assert (image['KernelId'], image['RamdiskId'], image['RootDeviceName']) == (kernel, ramdisk, '/dev/vda')
    assert image['VirtualizationType'] == 'paravirtual'
    (instance,) = ec2.run_instances(ImageId=machine, MinCount=1, MaxCount=1)['Instances']
    assert (instance['KernelId'], instance['RamdiskId']) == (kernel, ramdisk)


# --- sharing -------------------------------------------------------------------------------------

def test_private_until_shared_by_account_or_made_public(world, disk):
    alice, bob = world.client('alice'), world.client('bob')
    bob_account = world.account('bob')
    image_id = register(world, alice, 'alice', 'private one', disk)
    assert image_id not in visible_ids(bob)
    assert error_code(bob.describe_images, ImageIds=[image_id]) == 'InvalidAMIID.NotFound'
    assert error_code(bob.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == 'InvalidAMIID.NotFound'

    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'UserId': bob_account}]})
    assert alice.describe_image_attribute(ImageId=image_id, Attribute='launchPermission')['LaunchPermissions'] == [
        {'UserId': bob_account}]
    assert image_id in visible_ids(bob)
    assert [image['ImageId'] for image in bob.describe_images(ExecutableUsers=['self'])['Images']] == [image_id]
    bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert error_code(bob.describe_image_attribute, ImageId=image_id, Attribute='launchPermission') == 'AuthFailure'
    assert error_code(bob.modify_image_attribute, ImageId=image_id,
                      LaunchPermission={'Add': [{'Group': 'all'}]}) == 'AuthFailure'
    assert error_code(bob.deregister_image, ImageId=image_id) == 'AuthFailure'

    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Remove': [{'UserId': bob_account}]})
    assert image_id not in visible_ids(bob)

    alice.modify_image_attribute(ImageId=image_id, Attribute='launchPermission', OperationType='add',
                                 UserGroups=['all'])
    assert bob.describe_images(ImageIds=[image_id])['Images'][0]['Public'] is True
    assert alice.describe_image_attribute(ImageId=image_id, Attribute='launchPermission')['LaunchPermissions'] == [
        {'Group': 'all'}]
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'UserId': bob_account}]})
    alice.reset_image_attribute(ImageId=image_id, Attribute='launchPermission')
    assert image_id not in visible_ids(bob)
    assert alice.describe_image_attribute(ImageId=image_id, Attribute='launchPermission')['LaunchPermissions'] == []


def test_launch_permission_values_are_checked(world, disk):
    alice = world.client('alice')
    image_id = register(world, alice, 'alice', 'base', disk)
    assert error_code(alice.modify_image_attribute, ImageId=image_id,
                      LaunchPermission={'Add': [{'UserId': 'bob'}]}) == 'InvalidUserID.Malformed'
    assert error_code(alice.modify_image_attribute, ImageId=image_id,
                      LaunchPermission={'Add': [{'Group': 'everyone'}]}) == 'InvalidParameterValue'
    assert error_code(alice.modify_image_attribute, ImageId=image_id) == 'MissingParameter'
    assert error_code(alice.modify_image_attribute, ImageId='ami-0123456789abcdef0',
                      LaunchPermission={'Add': [{'Group': 'all'}]}) == 'InvalidAMIID.NotFound'
    assert error_code(alice.describe_image_attribute, ImageId=image_id, Attribute='sriovNetSupport') == \
        'InvalidParameterValue'


def test_descriptions_are_changed_read_and_reset(world, disk):
    alice, bob = world.client('alice'), world.client('bob')
    image_id = register(world, alice, 'alice', 'base', disk, Description='first')
    alice.modify_image_attribute(ImageId=image_id, Description={'Value': 'second'})
    assert alice.describe_image_attribute(ImageId=image_id, Attribute='description')['Description'] == {
        'Value': 'second'}
    alice.modify_image_attribute(ImageId=image_id, Attribute='description', Value='third')
    assert alice.describe_images(ImageIds=[image_id])['Images'][0]['Description'] == 'third'
    alice.reset_image_attribute(ImageId=image_id, Attribute='description')
    assert 'Description' not in alice.describe_images(ImageIds=[image_id])['Images'][0]
    assert error_code(bob.describe_image_attribute, ImageId=image_id, Attribute='description') == \
        'InvalidAMIID.NotFound'
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'Group': 'all'}]})
    assert bob.describe_image_attribute(ImageId=image_id, Attribute='kernel')['KernelId'] == {}


# --- CopyImage and DeregisterImage ---------------------------------------------------------------

def test_a_shared_image_copied_is_the_copiers_and_outlives_the_original(world, disk):
    alice, bob = world.client('alice'), world.client('bob')
    image_id = register(world, alice, 'alice', 'original', disk)
    region = world.cloud.config.region
    assert error_code(bob.copy_image, SourceImageId=image_id, SourceRegion=region, Name='mine') == \
        'InvalidAMIID.NotFound'
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'UserId': world.account('bob')}]})
    assert error_code(bob.copy_image, SourceImageId=image_id, SourceRegion='elsewhere-1', Name='mine') == \
        'InvalidParameterValue'
    copy_id = bob.copy_image(SourceImageId=image_id, SourceRegion=region, Name='mine',
                             Description='copied')['ImageId']
    (copy,) = bob.describe_images(ImageIds=[copy_id])['Images']
    assert (copy['OwnerId'], copy['State'], copy['Public'], copy['Description']) == (
        world.account('bob'), 'available', False, 'copied')
    assert error_code(bob.copy_image, SourceImageId=image_id, SourceRegion=region, Name='mine') == \
        'InvalidAMIName.Duplicate'
    alice.deregister_image(ImageId=image_id)
    (record,) = world.cloud.images.describe(world.account('bob'), image_ids=[copy_id])
    assert record.path.read_bytes() == disk
    bob.run_instances(ImageId=copy_id, MinCount=1, MaxCount=1)


def test_deregistered_images_keep_their_file_for_instances_until_the_last_ends(world, disk):
    alice, bob = world.client('alice'), world.client('bob')
    held_before = world.cloud.images.usage_by_account()[world.account('alice')]
    image_id = register(world, alice, 'alice', 'in use', disk)
    (record,) = world.cloud.images.describe(world.account('alice'), image_ids=[image_id])
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'Group': 'all'}]})
    mine = alice.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
    theirs = bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
    world.settle()
    alice.stop_instances(InstanceIds=[mine])
    world.settle()

    assert alice.deregister_image(ImageId=image_id)['Return'] is True
    assert image_id not in visible_ids(alice) | visible_ids(bob)
    for client in (alice, bob):
        assert error_code(client.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == \
            'InvalidAMIID.NotFound'
    assert bob.describe_instances(InstanceIds=[theirs])['Reservations'][0]['Instances'][0]['State']['Name'] == \
        'running'
    assert record.path.exists()

    bob.terminate_instances(InstanceIds=[theirs])
    world.settle()
    assert world.cloud.images.reclaim_storage() == []
    assert record.path.exists()                       # the stopped instance will need it to start

    alice.start_instances(InstanceIds=[mine])
    world.settle()
    alice.terminate_instances(InstanceIds=[mine])
    world.settle()
    assert world.cloud.images.reclaim_storage() == [image_id]
    assert not record.path.exists()
    assert world.cloud.images.usage_by_account()[world.account('alice')] == held_before


def test_an_unused_image_is_reclaimed_at_once_and_cannot_be_deregistered_twice(world, disk):
    alice = world.client('alice')
    image_id = register(world, alice, 'alice', 'unused', disk)
    (record,) = world.cloud.images.describe(world.account('alice'), image_ids=[image_id])
    alice.deregister_image(ImageId=image_id)
    assert not record.path.exists()
    assert error_code(alice.deregister_image, ImageId=image_id) == 'InvalidAMIID.NotFound'
    assert register(world, alice, 'alice', 'unused', disk) != image_id     # the name is free again


def test_bodies_larger_than_query_requests_stream_through(world):
    world.account('alice')
    raw = bytearray(3 * 1024 * 1024)           # beyond the 1 MiB limit of Query API bodies
    raw[510:512] = b'\x55\xaa'
    response = upload(world, 'alice', 'raw disk', bytes(raw), **{'x-reservoir-disk-format': 'raw'})
    assert (response.status_code, response.headers['x-reservoir-upload-state']) == (200, 'ready')


def test_tags_given_at_registration_or_copy_belong_to_the_owner(world, disk):
    alice, bob = world.client('alice'), world.client('bob')
    tagged = [{'ResourceType': 'image', 'Tags': [{'Key': 'team', 'Value': 'blue'}]}]
    assert upload(world, 'alice', 'tagged', disk).status_code == 200
    assert error_code(alice.register_image, Name='tagged', ImageLocation='tagged', TagSpecifications=[
        {'ResourceType': 'image', 'Tags': [{'Key': 'aws:reserved', 'Value': 'x'}]}]) == 'InvalidParameterValue'
    image_id = alice.register_image(Name='tagged', ImageLocation='tagged', TagSpecifications=tagged)['ImageId']
    (image,) = alice.describe_images(Filters=[{'Name': 'tag:team', 'Values': ['blue']}])['Images']
    assert (image['ImageId'], image['Tags']) == (image_id, [{'Key': 'team', 'Value': 'blue'}])
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'Group': 'all'}]})
    assert 'Tags' not in bob.describe_images(ImageIds=[image_id])['Images'][0]
    copy_id = bob.copy_image(SourceImageId=image_id, SourceRegion=world.cloud.config.region, Name='copy',
                             TagSpecifications=[{'ResourceType': 'image', 'Tags': [{'Key': 'mine', 'Value': ''}]}]
                             )['ImageId']
    assert bob.describe_images(ImageIds=[copy_id])['Images'][0]['Tags'] == [{'Key': 'mine', 'Value': ''}]
