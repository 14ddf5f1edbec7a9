from rest_framework import serializers

from teams.models import ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "permission",
            "prefix",
            "is_enabled",
            "created_by",
            "created_at",
            "last_used_at",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at"]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    permission = serializers.ChoiceField(
        choices=ApiKey.Permission.choices, default=ApiKey.Permission.READ_WRITE
    )


class ApiKeyUpdateSerializer(serializers.Serializer):
    is_enabled = serializers.BooleanField()
