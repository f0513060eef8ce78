//go:build tools

// Package pin keeps the project's chosen dependencies in go.mod while the packages that
// use them are being written, so parallel work does not race on `go get`. Delete it once
// every module below is imported by real code.
package pin

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	_ "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	_ "github.com/Azure/go-amqp"
	_ "github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/uuid"
	_ "github.com/netresearch/go-cron"
	_ "github.com/spf13/cobra"
)
