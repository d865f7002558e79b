"""What every protocol shares once a request is read: throttling, DryRun and the action call.

A protocol hands over the operation's name and its parameters spelled as the Query protocol spells
them; the operation's model parses them into what the action handler takes. The administrators'
actions are refused here, to anyone the authenticator did not flag as an administrator, before
anything else is looked at.
"""
from .actions import RequestContext, Result, handler_for
from .errors import EC2Error
from .parser import parse_params
from .service_model import is_admin_action, operation
from .throttle import Throttle


class Dispatcher:
    def __init__(self, cloud):
        self.cloud = cloud
        self.throttle = Throttle.from_settings(cloud.config.compute)

    def call(self, action_name, params, principal, *, version, request_id, host):
        """(operation model, Result) of one action, or EC2Error."""
        if not action_name:
            raise EC2Error('MissingAction', 'The request must contain the parameter Action')
        model = operation(action_name)
        if model is None:
            raise EC2Error('InvalidAction', f'The action {action_name} is not valid for this web service.')
        if is_admin_action(action_name) and not principal.admin:
            raise EC2Error('UnauthorizedOperation', 'You are not authorized to perform this operation.')
        handler = handler_for(action_name)
        if handler is None:
            raise EC2Error('UnsupportedOperation', f'The action {action_name} is not supported by this cloud.')
        if self.throttle is not None:
            self.throttle.check(principal.account_id, action_name)
        arguments = parse_params(model, params)
        if arguments.get('DryRun'):
            raise EC2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.')
        context = RequestContext(cloud=self.cloud, account_id=principal.account_id,
                                 user_name=principal.user_name, version=version or '',
                                 request_id=request_id, host=host)
        result = handler(context, arguments)
        return model, result if isinstance(result, Result) else Result(result or {})
