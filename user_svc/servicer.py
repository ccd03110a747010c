"""UserService over gRPC: converts messages to domain calls and back, nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import grpc

from meshkit import logs
from meshkit.tls import IdentityError, peer_identity
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc import convert
from user_svc.accounts import Accounts
from user_svc.auth import Auth
from user_svc.credentials import PasswordFlows
from user_svc.mfa import Mfa
from user_svc.model import Caller
from user_svc.roles import Roles
from user_svc.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext
HealthCheck = Callable[[], Awaitable[bool]]


class UserServicer(pb_grpc.UserServiceServicer):
    """user.v1.UserService."""

    def __init__(
        self,
        settings: Settings,
        accounts: Accounts,
        auth: Auth,
        passwords: PasswordFlows,
        mfa: Mfa,
        roles: Roles,
        health: HealthCheck,
        version: str,
    ) -> None:
        self._trusted = settings.trusted_networks
        self._proxy_names = settings.trusted_proxy_names
        self._accounts = accounts
        self._auth = auth
        self._passwords = passwords
        self._mfa = mfa
        self._roles = roles
        self._health = health
        self._version = version

    def _caller(self, context: Context) -> Caller:
        return convert.caller(
            context.invocation_metadata(),
            context.peer() or "",
            logs.method.get(),
            self._trusted,
            self._is_proxy(context),
        )

    def _is_proxy(self, context: Context) -> bool:
        """Whether the peer's TLS identity is a trusted proxy's (plaintext: no identity
        to check, the address decides)."""
        try:
            identity = peer_identity(context.auth_context())
        except IdentityError:
            return False
        return identity is None or identity.name in self._proxy_names

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        user = await self._accounts.create(
            self._caller(context),
            request.username,
            request.email,
            request.password,
            request.display_name,
        )
        return pb.CreateUserResponse(user=convert.user_pb(user))

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        user = await self._accounts.get(self._caller(context), request.user_id)
        return pb.GetUserResponse(user=convert.user_pb(user))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        page = await self._accounts.list_users(
            self._caller(context), request.page_size, request.page_token
        )
        return pb.ListUsersResponse(
            users=[convert.user_pb(u) for u in page.users], next_page_token=page.next_page_token
        )

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Context
    ) -> pb.UpdateUserResponse:
        fields = {"email": request.user.email, "display_name": request.user.display_name}
        user = await self._accounts.update(
            self._caller(context), request.user.user_id, fields, list(request.update_mask.paths)
        )
        return pb.UpdateUserResponse(user=convert.user_pb(user))

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        await self._accounts.delete(self._caller(context), request.user_id)
        return pb.DeleteUserResponse()

    async def LockUser(self, request: pb.LockUserRequest, context: Context) -> pb.LockUserResponse:
        user = await self._accounts.lock(self._caller(context), request.user_id, request.reason)
        return pb.LockUserResponse(user=convert.user_pb(user))

    async def UnlockUser(
        self, request: pb.UnlockUserRequest, context: Context
    ) -> pb.UnlockUserResponse:
        user = await self._accounts.unlock(self._caller(context), request.user_id)
        return pb.UnlockUserResponse(user=convert.user_pb(user))

    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        signed_in = await self._auth.login(
            self._caller(context), request.username, request.password, request.totp_code
        )
        tokens = signed_in.tokens
        return pb.LoginResponse(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=convert.expires_in(tokens),
            session_id=tokens.session_id,
            user=convert.user_pb(signed_in.user),
        )

    async def Logout(self, request: pb.LogoutRequest, context: Context) -> pb.LogoutResponse:
        await self._auth.logout(self._caller(context), request.refresh_token)
        return pb.LogoutResponse()

    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: Context
    ) -> pb.RefreshTokenResponse:
        tokens = await self._auth.refresh(self._caller(context), request.refresh_token)
        return pb.RefreshTokenResponse(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=convert.expires_in(tokens),
        )

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        await self._passwords.change(
            self._caller(context), request.current_password, request.new_password
        )
        return pb.ChangePasswordResponse()

    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest, context: Context
    ) -> pb.RequestPasswordResetResponse:
        await self._passwords.request_reset(self._caller(context), request.email)
        return pb.RequestPasswordResetResponse()

    async def ConfirmPasswordReset(
        self, request: pb.ConfirmPasswordResetRequest, context: Context
    ) -> pb.ConfirmPasswordResetResponse:
        await self._passwords.confirm_reset(
            self._caller(context), request.reset_token, request.new_password
        )
        return pb.ConfirmPasswordResetResponse()

    async def EnableMfa(
        self, request: pb.EnableMfaRequest, context: Context
    ) -> pb.EnableMfaResponse:
        enrolment = await self._mfa.enable(self._caller(context), request.user_id)
        return pb.EnableMfaResponse(
            secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri
        )

    async def VerifyMfa(
        self, request: pb.VerifyMfaRequest, context: Context
    ) -> pb.VerifyMfaResponse:
        check = await self._mfa.verify(self._caller(context), request.user_id, request.totp_code)
        return pb.VerifyMfaResponse(verified=check.verified, mfa_enabled=check.mfa_enabled)

    async def DisableMfa(
        self, request: pb.DisableMfaRequest, context: Context
    ) -> pb.DisableMfaResponse:
        await self._mfa.disable(self._caller(context), request.user_id, request.totp_code)
        return pb.DisableMfaResponse()

    async def GrantPermission(
        self, request: pb.GrantPermissionRequest, context: Context
    ) -> pb.GrantPermissionResponse:
        user = await self._roles.grant_permission(
            self._caller(context), request.user_id, request.permission
        )
        return pb.GrantPermissionResponse(user=convert.user_pb(user))

    async def AssignRole(
        self, request: pb.AssignRoleRequest, context: Context
    ) -> pb.AssignRoleResponse:
        user = await self._roles.assign_role(self._caller(context), request.user_id, request.role)
        return pb.AssignRoleResponse(user=convert.user_pb(user))

    async def RemoveRole(
        self, request: pb.RemoveRoleRequest, context: Context
    ) -> pb.RemoveRoleResponse:
        user = await self._roles.remove_role(self._caller(context), request.user_id, request.role)
        return pb.RemoveRoleResponse(user=convert.user_pb(user))

    async def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        serving = await self._health()
        return pb.HealthResponse(
            status="SERVING" if serving else "NOT_SERVING", version=self._version
        )
