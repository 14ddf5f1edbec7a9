from rest_framework import serializers

from teams.models import ApiKey


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
