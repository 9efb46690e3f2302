from .profile_dialog import ProfileDialog

__all__ = ["ProfileDialog"]
