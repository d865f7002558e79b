"""Sharing attributes (an image's launchPermission, a snapshot's createVolumePermission): the changes
a Modify…Attribute request asks for, in either of the spellings clients send."""
from ..errors import EC2Error

PUBLIC_GROUP = 'all'


def permission_changes(args, structured, groups_parameter):
    """{add, remove, add_public, remove_public} from the structured parameter (`structured`, with
    Add/Remove lists of {UserId} or {Group}) or from OperationType with UserIds and the groups
    parameter, as older clients send it; None when the request asks for neither."""
    if args.get(structured):
        permission = args[structured]
        add, remove = permission.get('Add') or [], permission.get('Remove') or []
    elif args.get('UserIds') or args.get(groups_parameter):
        operation = args.get('OperationType')
        if operation not in ('add', 'remove'):
            raise EC2Error('InvalidParameterValue', "OperationType must be 'add' or 'remove'")
        entries = [{'UserId': user} for user in args.get('UserIds') or ()] + \
                  [{'Group': group} for group in args.get(groups_parameter) or ()]
        add, remove = (entries, []) if operation == 'add' else ([], entries)
    else:
        return None
    added_accounts, added_public = _split(add)
    removed_accounts, removed_public = _split(remove)
    return {'add': added_accounts, 'remove': removed_accounts, 'add_public': added_public,
            'remove_public': removed_public}


def permission_list(public, accounts):
    """The attribute as Describe…Attribute shows it."""
    return [{'UserId': account} for account in accounts] + ([{'Group': PUBLIC_GROUP}] if public else [])


def _split(entries):
    accounts, public = [], False
    for entry in entries:
        group, user = entry.get('Group'), entry.get('UserId')
        if group is not None and group != PUBLIC_GROUP:
            raise EC2Error('InvalidParameterValue', f"Unknown group '{group}': the only group is '{PUBLIC_GROUP}'")
        if group is None and user is None:
            raise EC2Error('InvalidParameterValue', 'A permission names a UserId or the Group all')
        public = public or group == PUBLIC_GROUP
        if user is not None:
            accounts.append(user)
    return accounts, public
