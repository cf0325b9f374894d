from django.urls import include, path
from rest_framework.routers import SimpleRouter

from runtimes import api, views

router = SimpleRouter(trailing_slash=True)
router.register("packages", api.PackageViewSet, basename="package")
router.register("runtimes", api.RuntimeViewSet, basename="runtime")

urlpatterns = [
    path("runtimes/", views.packages_page, name="runtimes-page"),
    path("api/packages/upload/", api.WheelUpload.as_view(), name="package-upload"),
    path("api/runtime/modules/", api.runtime_modules, name="runtime-modules"),
    path("api/", include(router.urls)),
]
