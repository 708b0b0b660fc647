from django.urls import path

urlpatterns: list = []  # the workspace pages (live progress issue) go here
