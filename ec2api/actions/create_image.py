"""CreateImage: save an instance's disk as a new private machine image of the caller."""
from . import action


@action('CreateImage')
def create_image(ctx, args):
    image_id = ctx.cloud.snapshots.create_image(
        ctx.account_id, args['InstanceId'], args['Name'], description=args.get('Description'),
        no_reboot=bool(args.get('NoReboot', False)))
    return {'ImageId': image_id}
