from rest_framework import serializers

from pods.models import RegistryCredential, SshKey
from teams.models import ApiKey, Invite, Membership, Role


class ApiKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    # The pod a key was issued to (its RUNPOD_API_KEY), else null.
    pod = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "permission",
            "prefix",
            "is_enabled",
            "created_by",
            "pod",
            "created_at",
            "last_used_at",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at"]

    def get_pod(self, key: ApiKey) -> str | None:
        return key.pod_public_id or None


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    permission = serializers.ChoiceField(
        choices=ApiKey.Permission.choices, default=ApiKey.Permission.READ_WRITE
    )


class ApiKeyUpdateSerializer(serializers.Serializer):
    is_enabled = serializers.BooleanField()


class SshKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = SshKey
        fields = ["id", "name", "key_type", "fingerprint", "public_key", "created_at"]
        read_only_fields = fields


class SshKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    public_key = serializers.CharField(
        max_length=8192, help_text="One OpenSSH line, e.g. ssh-ed25519 AAAA… me"
    )


class RegistryCredentialSerializer(serializers.ModelSerializer):
    """A registry login without its password: the secret is write-only, never answered."""

    id = serializers.CharField(source="public_id", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = RegistryCredential
        fields = ["id", "name", "registry", "username", "created_by", "created_at"]
        read_only_fields = fields


class RegistryCredentialCreateSerializer(serializers.Serializer):
    name = serializers.CharField()
    registry = serializers.CharField(default="docker.io")
    username = serializers.CharField()
    password = serializers.CharField(write_only=True, trim_whitespace=False)


class RegistryCredentialUpdateSerializer(serializers.Serializer):
    """A new login for the same registry: the password is always given again."""

    username = serializers.CharField()
    password = serializers.CharField(write_only=True, trim_whitespace=False)


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "joined_at"]
        read_only_fields = fields


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InviteSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    status = serializers.CharField(read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = Invite
        fields = ["id", "role", "status", "created_by", "created_at", "expires_at"]
        read_only_fields = fields


class InviteCreatedSerializer(InviteSerializer):
    """The answer to create, the only one that carries the link: whoever opens it joins."""

    link = serializers.SerializerMethodField()

    class Meta(InviteSerializer.Meta):
        fields = [*InviteSerializer.Meta.fields, "link"]
        read_only_fields = fields

    def get_link(self, invite: Invite) -> str:
        return self.context["request"].build_absolute_uri(invite.get_absolute_url())


class InviteCreateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, default=Role.BASIC)
