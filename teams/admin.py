from django.contrib import admin

from teams.models import User

admin.site.register(User)
