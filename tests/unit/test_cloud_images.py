"""Images that administrators register belong to the cloud itself, shown as the owner alias
'reservoir' (as AWS's own images are 'amazon'), whatever users exist."""
import subprocess

from backend.models import CLOUD_ACCOUNT
from tests.support.client_errors import error_code


def cloud_image(world, tmp_path):
    disk = tmp_path / 'stock.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '8M'], check=True)
    return world.cloud.images.register_file(disk, 'stock', CLOUD_ACCOUNT, public=True).image_id


def test_the_clouds_images_answer_to_its_alias(world, ec2, tmp_path):
    image_id = cloud_image(world, tmp_path)
    (image,) = ec2.describe_images(Owners=['reservoir'])['Images']
    assert (image['ImageId'], image['OwnerId'], image['ImageOwnerAlias']) == (image_id, CLOUD_ACCOUNT, 'reservoir')
    mine = ec2.describe_images(Owners=['self'])['Images']
    assert image_id not in [i['ImageId'] for i in mine] and all('ImageOwnerAlias' not in i for i in mine)
    assert ec2.describe_images(Owners=['amazon'])['Images'] == []


def test_the_owner_alias_filter_finds_the_clouds_images(world, ec2, tmp_path):
    image_id = cloud_image(world, tmp_path)
    found = ec2.describe_images(Filters=[{'Name': 'owner-alias', 'Values': ['reservoir']}])['Images']
    assert [image['ImageId'] for image in found] == [image_id]
    assert ec2.describe_images(Filters=[{'Name': 'owner-alias', 'Values': ['amazon']}])['Images'] == []


def test_no_user_may_change_or_remove_the_clouds_images(world, ec2, tmp_path):
    image_id = cloud_image(world, tmp_path)
    assert error_code(ec2.deregister_image, ImageId=image_id) == 'AuthFailure'
    assert error_code(ec2.modify_image_attribute, ImageId=image_id,
                      Description={'Value': 'mine now'}) == 'AuthFailure'
    assert error_code(ec2.modify_image_attribute, ImageId=image_id,
                      LaunchPermission={'Remove': [{'Group': 'all'}]}) == 'AuthFailure'
    (image,) = ec2.describe_images(ImageIds=[image_id])['Images']
    assert (image['State'], image['Public'], image.get('Description')) == ('available', True, None)
    launched = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)['Instances']
    assert launched[0]['ImageId'] == image_id
