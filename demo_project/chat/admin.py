"""Admin pages for browsing and moderating the demo chat."""

from django.contrib import admin

from .models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    """Rooms by name, newest first, so a room created by a mutation is easy to find."""

    list_display = ("name", "created_at")
    search_fields = ("name",)
    ordering = ("-created_at",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages with their room and author, searchable by text, room and username."""

    list_display = ("created_at", "room", "author", "text")
    list_filter = ("room",)
    list_select_related = ("room", "author")
    search_fields = ("text", "room__name", "author__username")
    raw_id_fields = ("author",)
    date_hierarchy = "created_at"
